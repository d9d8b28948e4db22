package dev.eventbus.example;

import com.google.protobuf.Descriptors.MethodDescriptor;
import com.google.protobuf.Descriptors.ServiceDescriptor;
import com.google.protobuf.Message;
import com.salesforce.eventbus.protobuf.FetchRequest;
import com.salesforce.eventbus.protobuf.FetchResponse;
import com.salesforce.eventbus.protobuf.ManagedFetchRequest;
import com.salesforce.eventbus.protobuf.ManagedFetchResponse;
import com.salesforce.eventbus.protobuf.PubSubProto;
import com.salesforce.eventbus.protobuf.PublishRequest;
import com.salesforce.eventbus.protobuf.PublishResponse;
import com.salesforce.eventbus.protobuf.SchemaInfo;
import com.salesforce.eventbus.protobuf.SchemaRequest;
import com.salesforce.eventbus.protobuf.TopicInfo;
import com.salesforce.eventbus.protobuf.TopicRequest;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor.MethodType;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.TimeUnit;

/**
 * The six RPCs of {@code eventbus.v1.PubSub} as grpc-java method descriptors.
 *
 * <p>Owns: turning the service descriptor that protoc generated from our
 * proto ({@link PubSubProto#getDescriptor()}) into {@link io.grpc.MethodDescriptor}s (full
 * method name, streaming kind, protobuf marshallers) and the calls on a channel. It checks
 * that each method's request and response types in the proto are the message classes named
 * here, so a change of the proto fails at startup, not on the wire. Must not: add call
 * metadata (the channel's interceptor does) or know about topics and events.
 *
 * <p>This does what protoc-gen-grpc-java's generated {@code PubSubGrpc} stub does; the
 * grpc plugin binary is not needed.
 */
final class PubSubRpc {
    private static final ServiceDescriptor SERVICE =
            PubSubProto.getDescriptor().findServiceByName("PubSub");

    static final io.grpc.MethodDescriptor<TopicRequest, TopicInfo> GET_TOPIC =
            method("GetTopic", TopicRequest.getDefaultInstance(), TopicInfo.getDefaultInstance());
    static final io.grpc.MethodDescriptor<SchemaRequest, SchemaInfo> GET_SCHEMA =
            method("GetSchema", SchemaRequest.getDefaultInstance(), SchemaInfo.getDefaultInstance());
    static final io.grpc.MethodDescriptor<PublishRequest, PublishResponse> PUBLISH =
            method("Publish", PublishRequest.getDefaultInstance(), PublishResponse.getDefaultInstance());
    static final io.grpc.MethodDescriptor<PublishRequest, PublishResponse> PUBLISH_STREAM =
            method("PublishStream", PublishRequest.getDefaultInstance(), PublishResponse.getDefaultInstance());
    static final io.grpc.MethodDescriptor<FetchRequest, FetchResponse> SUBSCRIBE =
            method("Subscribe", FetchRequest.getDefaultInstance(), FetchResponse.getDefaultInstance());
    static final io.grpc.MethodDescriptor<ManagedFetchRequest, ManagedFetchResponse> MANAGED_SUBSCRIBE =
            method(
                    "ManagedSubscribe",
                    ManagedFetchRequest.getDefaultInstance(),
                    ManagedFetchResponse.getDefaultInstance());

    /** Deadline of each unary call. */
    private static final long UNARY_DEADLINE_S = 30;

    private final Channel channel;

    PubSubRpc(Channel channel) {
        this.channel = channel;
    }

    private static <Q extends Message, R extends Message> io.grpc.MethodDescriptor<Q, R> method(
            String name, Q request, R response) {
        if (SERVICE == null) {
            throw new IllegalStateException("the generated descriptor has no service PubSub");
        }
        MethodDescriptor proto = SERVICE.findMethodByName(name);
        if (proto == null) {
            throw new IllegalStateException("service " + SERVICE.getFullName() + " has no method " + name);
        }
        if (!proto.getInputType().equals(request.getDescriptorForType())
                || !proto.getOutputType().equals(response.getDescriptorForType())) {
            throw new IllegalStateException(name + " takes " + proto.getInputType().getFullName()
                    + " and returns " + proto.getOutputType().getFullName() + " in the proto");
        }
        MethodType type;
        if (proto.isClientStreaming() && proto.isServerStreaming()) {
            type = MethodType.BIDI_STREAMING;
        } else if (proto.isClientStreaming()) {
            type = MethodType.CLIENT_STREAMING;
        } else if (proto.isServerStreaming()) {
            type = MethodType.SERVER_STREAMING;
        } else {
            type = MethodType.UNARY;
        }
        return io.grpc.MethodDescriptor.<Q, R>newBuilder()
                .setType(type)
                .setFullMethodName(io.grpc.MethodDescriptor.generateFullMethodName(SERVICE.getFullName(), name))
                .setRequestMarshaller(ProtoUtils.marshaller(request))
                .setResponseMarshaller(ProtoUtils.marshaller(response))
                .build();
    }

    private CallOptions unary() {
        return CallOptions.DEFAULT.withDeadlineAfter(UNARY_DEADLINE_S, TimeUnit.SECONDS);
    }

    TopicInfo getTopic(TopicRequest request) {
        return ClientCalls.blockingUnaryCall(channel, GET_TOPIC, unary(), request);
    }

    SchemaInfo getSchema(SchemaRequest request) {
        return ClientCalls.blockingUnaryCall(channel, GET_SCHEMA, unary(), request);
    }

    PublishResponse publish(PublishRequest request) {
        return ClientCalls.blockingUnaryCall(channel, PUBLISH, unary(), request);
    }

    /** Publish with the request compressed with gzip ({@code grpc-encoding: gzip}). */
    PublishResponse publishGzip(PublishRequest request) {
        return ClientCalls.blockingUnaryCall(channel, PUBLISH, unary().withCompression("gzip"), request);
    }

    StreamObserver<PublishRequest> publishStream(StreamObserver<PublishResponse> responses) {
        return ClientCalls.asyncBidiStreamingCall(channel.newCall(PUBLISH_STREAM, CallOptions.DEFAULT), responses);
    }

    StreamObserver<FetchRequest> subscribe(StreamObserver<FetchResponse> responses) {
        return ClientCalls.asyncBidiStreamingCall(channel.newCall(SUBSCRIBE, CallOptions.DEFAULT), responses);
    }

    StreamObserver<ManagedFetchRequest> managedSubscribe(StreamObserver<ManagedFetchResponse> responses) {
        return ClientCalls.asyncBidiStreamingCall(
                channel.newCall(MANAGED_SUBSCRIBE, CallOptions.DEFAULT), responses);
    }
}
