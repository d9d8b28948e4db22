package dev.eventbus.example;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The server's side of one streaming call as a queue the main thread reads with deadlines.
 *
 * <p>Owns: handing responses, the end of the call and its error from grpc-java's threads to
 * the reader, in order. Must not: send requests (flow control is the caller's).
 */
final class Streams {
    private Streams() {}

    /** What {@link Inbox#next} hands over: a response, the call's end, or nothing in time. */
    record Item<T>(T response, boolean ended, Throwable error) {
        boolean timedOut() {
            return response == null && !ended;
        }

        /** The call's end as text: OK, or the gRPC status and message. */
        String endText() {
            if (error == null) {
                return "OK";
            }
            Status status = Status.fromThrowable(error);
            return status.getCode() + (status.getDescription() == null ? "" : ": " + status.getDescription());
        }
    }

    /** A {@link StreamObserver} whose responses the caller reads one at a time. */
    static final class Inbox<T> implements StreamObserver<T> {
        private final LinkedBlockingQueue<Item<T>> queue = new LinkedBlockingQueue<>();

        @Override
        public void onNext(T value) {
            queue.add(new Item<>(value, false, null));
        }

        @Override
        public void onError(Throwable t) {
            queue.add(new Item<>(null, true, t));
        }

        @Override
        public void onCompleted() {
            queue.add(new Item<>(null, true, null));
        }

        /** The next response or end, or a timed-out item after {@code millis}. */
        Item<T> next(long millis) throws InterruptedException {
            Item<T> item = queue.poll(millis, TimeUnit.MILLISECONDS);
            return item == null ? new Item<>(null, false, null) : item;
        }
    }
}
