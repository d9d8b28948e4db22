package dev.eventbus.example;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.apache.avro.Schema;
import org.junit.jupiter.api.Test;

class BitmapsTest {
    /** A change event schema: header at 0, a compound at 3 (a nullable record). */
    private static final Schema SCHEMA = new Schema.Parser().parse("""
            {"type": "record", "name": "AccountChangeEvent", "fields": [
              {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader",
                "fields": [{"name": "changeType", "type": "string"}]}},
              {"name": "Name", "type": ["null", "string"], "default": null},
              {"name": "Phone", "type": ["null", "string"], "default": null},
              {"name": "BillingAddress", "type": ["null", {"type": "record", "name": "Address", "fields": [
                {"name": "Street", "type": ["null", "string"], "default": null},
                {"name": "City", "type": ["null", "string"], "default": null},
                {"name": "PostalCode", "type": ["null", "string"], "default": null}]}], "default": null},
              {"name": "f4", "type": ["null", "string"], "default": null},
              {"name": "f5", "type": ["null", "string"], "default": null},
              {"name": "f6", "type": ["null", "string"], "default": null},
              {"name": "f7", "type": ["null", "string"], "default": null},
              {"name": "f8", "type": ["null", "string"], "default": null},
              {"name": "LastModifiedDate", "type": ["null", "long"], "default": null}]}
            """);

    @Test
    void topLevelBitsAreSchemaPositionsFromTheLeastSignificant() {
        // 0x0202: bits 1 and 9.
        assertEquals(List.of("Name", "LastModifiedDate"), Bitmaps.fieldNames(SCHEMA, List.of("0x0202")));
        assertEquals(List.of("Phone"), Bitmaps.fieldNames(SCHEMA, List.of("0x04")));
    }

    @Test
    void nestedElementsNameCompoundComponents() {
        assertEquals(
                List.of("Name", "BillingAddress.City", "BillingAddress.PostalCode"),
                Bitmaps.fieldNames(SCHEMA, List.of("3-0x06", "0x02")));
    }

    @Test
    void emptyAndZeroBitmapsNameNothing() {
        assertEquals(List.of(), Bitmaps.fieldNames(SCHEMA, List.of()));
        assertEquals(List.of(), Bitmaps.fieldNames(SCHEMA, List.of("0x00")));
    }

    @Test
    void eitherHexCaseAndLongValuesDecode() {
        assertEquals(List.of(0, 3, 65), Bitmaps.bits("0x2000000000000000" + "9"));
        assertEquals(Bitmaps.bits("0xab"), Bitmaps.bits("0xAB"));
    }

    @Test
    void malformedAndOutOfRangeElementsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Bitmaps.fieldNames(SCHEMA, List.of("12")));
        assertThrows(IllegalArgumentException.class, () -> Bitmaps.fieldNames(SCHEMA, List.of("0xZZ")));
        assertThrows(IllegalArgumentException.class, () -> Bitmaps.fieldNames(SCHEMA, List.of("x-0x01")));
        assertThrows(IllegalArgumentException.class, () -> Bitmaps.fieldNames(SCHEMA, List.of("0x0400")));
        assertThrows(IllegalArgumentException.class, () -> Bitmaps.fieldNames(SCHEMA, List.of("1-0x01")));
        assertThrows(IllegalArgumentException.class, () -> Bitmaps.fieldNames(SCHEMA, List.of("3-0x08")));
    }
}
