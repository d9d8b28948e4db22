package dev.eventbus.example;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * Counts the HTTP/2 PING and GOAWAY frames of grpc-java's Netty transport by listening to its
 * frame logger (java.util.logging, level FINE), so the idle check can say who pinged whom.
 *
 * <p>Owns: that logger's level and one handler on it while installed. Must not: change what
 * the transport does or print the frames.
 */
final class FrameCounter extends Handler {
    /** The logger grpc-java's Netty client handler writes its frame log to (netty-shaded). */
    private static final String LOGGER = "io.grpc.netty.shaded.io.grpc.netty.NettyClientHandler";

    final AtomicInteger clientPings = new AtomicInteger();
    final AtomicInteger clientPingAcks = new AtomicInteger();
    final AtomicInteger serverPings = new AtomicInteger();
    final AtomicInteger serverGoAways = new AtomicInteger();

    private final Logger logger = Logger.getLogger(LOGGER);

    /** Starts counting; frames are logged from now on. */
    FrameCounter install() {
        setLevel(Level.ALL);
        logger.setLevel(Level.FINE);
        logger.setUseParentHandlers(false);
        logger.addHandler(this);
        return this;
    }

    @Override
    public void publish(LogRecord record) {
        String text = record.getMessage();
        if (text == null) {
            return;
        }
        if (record.getParameters() != null && record.getParameters().length > 0) {
            text = text + " " + java.util.Arrays.toString(record.getParameters());
        }
        boolean inbound = text.contains("INBOUND");
        boolean outbound = text.contains("OUTBOUND");
        if (text.contains("PING")) {
            boolean ack = text.contains("ack=true");
            if (outbound && !ack) {
                clientPings.incrementAndGet();
            } else if (inbound && ack) {
                clientPingAcks.incrementAndGet();
            } else if (inbound) {
                serverPings.incrementAndGet();
            }
        } else if (text.contains("GO_AWAY") && inbound) {
            serverGoAways.incrementAndGet();
        }
    }

    @Override
    public void flush() {}

    @Override
    public void close() {
        logger.removeHandler(this);
    }

    @Override
    public String toString() {
        return "client PINGs " + clientPings + " (acked " + clientPingAcks + "), server PINGs " + serverPings
                + ", server GOAWAYs " + serverGoAways;
    }
}
