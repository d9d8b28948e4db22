package dev.eventbus.example;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;

/**
 * Decodes the field bitmaps of a change event header ({@code changedFields},
 * {@code nulledFields}, {@code diffFields}) into field names, as Salesforce documents them.
 *
 * <p>Each element is either {@code 0x<hex>}: one unsigned number whose bit {@code i} (least
 * significant = 0) stands for the top-level field at position {@code i} of the event schema;
 * or {@code <pos>-0x<hex>}: bit {@code j} stands for component {@code j} of the compound
 * field (a nullable record, such as {@code BillingAddress}) at top-level position {@code pos},
 * named {@code Parent.Component}.
 *
 * <p>Owns: that format and the names it yields. Must not: read events or talk to a server.
 */
final class Bitmaps {
    private Bitmaps() {}

    /**
     * The field names the bitmap elements stand for, top-level fields first in position order,
     * then each compound's components.
     *
     * @throws IllegalArgumentException for an element that is not one of the two forms, or a bit
     *     past the last field
     */
    static List<String> fieldNames(Schema schema, List<? extends CharSequence> bitmap) {
        List<String> names = new ArrayList<>();
        List<String> nested = new ArrayList<>();
        List<Schema.Field> fields = schema.getFields();
        for (CharSequence element : bitmap) {
            String text = element.toString();
            int dash = text.indexOf('-');
            if (dash < 0) {
                for (int bit : bits(text)) {
                    names.add(field(fields, bit, "the schema").name());
                }
            } else {
                int pos;
                try {
                    pos = Integer.parseInt(text.substring(0, dash));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("bitmap element " + text + " has no position");
                }
                Schema.Field parent = field(fields, pos, "the schema");
                Schema record = recordOf(parent.schema());
                if (record == null) {
                    throw new IllegalArgumentException("field " + parent.name() + " at " + pos + " is not compound");
                }
                for (int bit : bits(text.substring(dash + 1))) {
                    nested.add(parent.name() + "." + field(record.getFields(), bit, parent.name()).name());
                }
            }
        }
        names.addAll(nested);
        return names;
    }

    /** The positions of the set bits of {@code 0x<hex>}, lowest first. */
    static List<Integer> bits(String hex) {
        if (!(hex.startsWith("0x") || hex.startsWith("0X")) || hex.length() < 3) {
            throw new IllegalArgumentException("bitmap element " + hex + " is not 0x<hex>");
        }
        BigInteger value;
        try {
            value = new BigInteger(hex.substring(2), 16);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bitmap element " + hex + " is not 0x<hex>");
        }
        if (value.signum() < 0) {
            throw new IllegalArgumentException("bitmap element " + hex + " is negative");
        }
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < value.bitLength(); i++) {
            if (value.testBit(i)) {
                out.add(i);
            }
        }
        return out;
    }

    private static Schema.Field field(List<Schema.Field> fields, int pos, String what) {
        if (pos < 0 || pos >= fields.size()) {
            throw new IllegalArgumentException(what + " has no field at position " + pos + " (" + fields.size() + " fields)");
        }
        return fields.get(pos);
    }

    /** The record of a field type: itself, or the one record branch of a union. */
    private static Schema recordOf(Schema type) {
        if (type.getType() == Schema.Type.RECORD) {
            return type;
        }
        if (type.getType() == Schema.Type.UNION) {
            for (Schema branch : type.getTypes()) {
                if (branch.getType() == Schema.Type.RECORD) {
                    return branch;
                }
            }
        }
        return null;
    }
}
