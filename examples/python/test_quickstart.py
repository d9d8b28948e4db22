"""Offline checks of quickstart.py: no server needed.

Run after installing requirements.txt and running ./gen.sh:

    python -m unittest -v test_quickstart
"""

import contextlib
import io
import time
import unittest
from pathlib import Path

import quickstart

HERE = Path(__file__).resolve().parent
ORDER_EVENT = HERE.parent / "topics" / "event" / "Order_Event__e.avsc"


class SampleEvents(unittest.TestCase):
    def setUp(self):
        self.schema = quickstart.Schema("test-id", ORDER_EVENT.read_text())

    def test_example_schema_is_salesforce_shaped(self):
        self.assertEqual(self.schema.json["namespace"], "com.sforce.eventbus")
        self.assertEqual(self.schema.json["name"], "Order_Event__e")
        fields = {f["name"]: f for f in self.schema.json["fields"]}
        self.assertEqual(fields["CreatedDate"]["type"], "long")
        self.assertEqual(fields["CreatedById"]["type"], "string")
        for name, kind in [("OrderNumber__c", "string"), ("Amount__c", "double"), ("Status__c", "string")]:
            self.assertEqual(fields[name]["type"], ["null", kind])
            self.assertIn("default", fields[name])
            self.assertIsNone(fields[name]["default"])

    def test_sample_record_fills_standard_and_custom_fields(self):
        record = quickstart.sample_record(self.schema.json, 3)
        now_ms = time.time() * 1000
        self.assertLess(abs(record["CreatedDate"] - now_ms), 60_000, "CreatedDate is epoch ms")
        self.assertEqual(record["CreatedById"], quickstart.DUMMY_USER_ID)
        self.assertEqual(record["OrderNumber__c"], "OrderNumber-3")
        self.assertEqual(record["Amount__c"], 37.5)
        self.assertEqual(record["Status__c"], "Status-3")

    def test_payload_round_trips(self):
        for record in [
            quickstart.sample_record(self.schema.json, 1),
            {"CreatedDate": 0, "CreatedById": "", "OrderNumber__c": None, "Amount__c": None, "Status__c": None},
        ]:
            with self.subTest(record=record):
                self.assertEqual(self.schema.decode(self.schema.encode(record)), record)

    def test_payload_is_a_bare_datum(self):
        # No container-file magic ("Obj\x01") and no single-object marker (C3 01).
        payload = self.schema.encode(quickstart.sample_record(self.schema.json, 1))
        self.assertFalse(payload.startswith(b"Obj\x01"))
        self.assertFalse(payload.startswith(b"\xc3\x01"))

    def test_required_field_without_value_is_refused(self):
        schema = {"type": "record", "name": "X", "fields": [{"name": "Weird", "type": "int"}]}
        with self.assertRaises(SystemExit):
            quickstart.sample_record(schema, 1)


class CommandLine(unittest.TestCase):
    def test_help_parses(self):
        for argv in (["--help"], ["subscribe", "--help"], ["publish", "--help"], ["topic", "--help"]):
            with self.subTest(argv=argv), contextlib.redirect_stdout(io.StringIO()):
                with self.assertRaises(SystemExit) as exit_:
                    quickstart.parse_args(argv)
                self.assertEqual(exit_.exception.code, 0)

    def test_subscribe_defaults(self):
        args = quickstart.parse_args(["subscribe", "/event/Order_Event__e"])
        self.assertEqual((args.server, args.start, args.count, args.credit), ("127.0.0.1:7011", "latest", None, 10))

    def test_start_positions(self):
        pb2, _ = quickstart.load_stubs()
        self.assertEqual(quickstart.parse_start("earliest", pb2), (pb2.ReplayPreset.EARLIEST, b""))
        self.assertEqual(quickstart.parse_start("LATEST", pb2), (pb2.ReplayPreset.LATEST, b""))
        self.assertEqual(quickstart.parse_start("000000000000002a", pb2),
                         (pb2.ReplayPreset.CUSTOM, bytes.fromhex("000000000000002a")))
        with self.assertRaises(SystemExit):
            quickstart.parse_start("not-hex", pb2)


class GeneratedStubs(unittest.TestCase):
    def test_stubs_come_from_our_proto(self):
        pb2, pb2_grpc = quickstart.load_stubs()
        service = pb2.DESCRIPTOR.services_by_name["PubSub"]
        self.assertEqual(service.full_name, "eventbus.v1.PubSub")
        self.assertEqual(
            sorted(m.name for m in service.methods),
            ["GetSchema", "GetTopic", "ManagedSubscribe", "Publish", "PublishStream", "Subscribe"])
        self.assertTrue(hasattr(pb2_grpc, "PubSubStub"))
        # Spot-check field numbers that Salesforce clients depend on.
        fetch = pb2.FetchRequest.DESCRIPTOR.fields_by_name
        self.assertEqual([fetch[n].number for n in ("topic_name", "replay_preset", "replay_id", "num_requested")],
                         [1, 2, 3, 4])
        self.assertEqual(pb2.FetchResponse.DESCRIPTOR.fields_by_name["pending_num_requested"].number, 4)


if __name__ == "__main__":
    unittest.main()
