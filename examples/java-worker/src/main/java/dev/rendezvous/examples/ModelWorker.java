package dev.rendezvous.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A Rendezvous model worker outside the Python codebase, speaking the public contract:
 * reads PIPELINE.requests (Avro single-object encoding or JSON), writes one JSON Score per
 * request to PIPELINE.scores, keyed by request_id, on the request's own partition.
 *
 * <p>The model is a logistic regression exported as plain numbers (pipelines/train.py,
 * export_linear): p(1) = 1 / (1 + exp(-(intercept + sum coef[i] * x[features[i]]))).
 * Offsets are committed only after the batch's Scores were acknowledged (at least once;
 * the rendezvous counts a repeated Score once).
 */
public final class ModelWorker {
  private static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] args) throws Exception {
    Map<String, String> opt = options(args);
    String bootstrap = need(opt, "bootstrap");
    String pipeline = need(opt, "pipeline");
    String modelId = need(opt, "model-id");
    String version = opt.getOrDefault("model-version", "1");
    String role = opt.getOrDefault("role", "challenger");
    JsonNode model = JSON.readTree(Files.readString(Path.of(need(opt, "model"))));
    Schema schema = new Schema.Parser().parse(Files.readString(Path.of(need(opt, "schemas"), "Request.avsc")));
    BinaryMessageDecoder<GenericRecord> avro = new BinaryMessageDecoder<>(GenericData.get(), schema);

    List<String> features = new ArrayList<>();
    model.get("features").forEach(f -> features.add(f.asText()));
    double[] coef = new double[features.size()];
    for (int i = 0; i < coef.length; i++) coef[i] = model.get("coef").get(i).asDouble();
    double intercept = model.get("intercept").asDouble();

    Properties c = new Properties();
    c.put("bootstrap.servers", bootstrap);
    c.put("group.id", "rdv-" + pipeline + "-ext-" + modelId);
    c.put("enable.auto.commit", "false");
    c.put("auto.offset.reset", opt.getOrDefault("offset-reset", "latest"));
    c.put("fetch.max.wait.ms", "10");
    c.put("key.deserializer", ByteArrayDeserializer.class.getName());
    c.put("value.deserializer", ByteArrayDeserializer.class.getName());
    Properties p = new Properties();
    p.put("bootstrap.servers", bootstrap);
    p.put("acks", "all");
    p.put("enable.idempotence", "true"); // a batch retried after a broker crash is written once
    p.put("linger.ms", "0");
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());

    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c);
         KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      Thread main = Thread.currentThread();
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        consumer.wakeup();
        try { main.join(10_000); } catch (InterruptedException ignored) { }
      }));
      consumer.subscribe(List.of(pipeline + ".requests"), new ConsumerRebalanceListener() {
        @Override public void onPartitionsRevoked(Collection<TopicPartition> parts) { }
        @Override public void onPartitionsAssigned(Collection<TopicPartition> parts) {
          System.out.println("ready: " + modelId + " scoring " + parts.size() + " partitions of " + pipeline + ".requests");
          System.out.flush();
        }
      });
      try {
        while (true) {
          ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(100));
          if (records.isEmpty()) continue;
          long started = System.nanoTime();
          List<Future<RecordMetadata>> sent = new ArrayList<>();
          List<ObjectNode> scores = new ArrayList<>();
          List<ConsumerRecord<byte[], byte[]>> sources = new ArrayList<>();
          for (ConsumerRecord<byte[], byte[]> record : records) {
            Map<String, Object> request = decode(record.value(), avro);
            if (request == null) continue; // undecodable: the decoy reports it to the DLQ
            @SuppressWarnings("unchecked")
            Map<String, Object> x = (Map<String, Object>) request.get("features");
            ObjectNode score = JSON.createObjectNode();
            score.put("request_id", String.valueOf(request.get("request_id")));
            score.put("model_id", modelId);
            score.put("model_version", version);
            score.put("role", role);
            double z = intercept;
            String problem = null;
            for (int i = 0; i < coef.length; i++) {
              Object v = x == null ? null : x.get(features.get(i));
              if (!(v instanceof Number)) { problem = "feature '" + features.get(i) + "' is " + (v == null ? "missing" : "not a number"); break; }
              z += coef[i] * ((Number) v).doubleValue();
            }
            if (problem == null) {
              double p1 = 1.0 / (1.0 + Math.exp(-z));
              score.put("prediction", p1 >= 0.5 ? 1L : 0L);
              ObjectNode probabilities = score.putObject("probabilities");
              probabilities.put("0", 1.0 - p1);
              probabilities.put("1", p1);
              score.put("status", "ok");
              score.putNull("error");
            } else {
              score.putNull("prediction");
              score.putNull("probabilities");
              score.put("status", "error");
              score.put("error", problem);
            }
            scores.add(score);
            sources.add(record);
          }
          double latencyMs = (System.nanoTime() - started) / 1e6;
          for (int i = 0; i < scores.size(); i++) {
            ObjectNode score = scores.get(i);
            score.put("latency_ms", latencyMs);
            ConsumerRecord<byte[], byte[]> source = sources.get(i);
            sent.add(producer.send(new ProducerRecord<>(pipeline + ".scores", source.partition(),
                score.get("request_id").asText().getBytes(StandardCharsets.UTF_8), JSON.writeValueAsBytes(score))));
          }
          for (Future<RecordMetadata> f : sent) f.get();
          consumer.commitSync();
        }
      } catch (WakeupException stopping) {
        System.out.println("stopped: " + modelId);
      }
    }
  }

  /** A Request as a map, from Avro single-object encoding (0xC3 0x01 + fingerprint) or JSON; null if neither. */
  static Map<String, Object> decode(byte[] value, BinaryMessageDecoder<GenericRecord> avro) {
    try {
      if (value.length > 1 && (value[0] & 0xff) == 0xC3 && value[1] == 0x01) {
        GenericRecord r = avro.decode(value);
        Map<String, Object> features = new HashMap<>();
        ((Map<?, ?>) r.get("features")).forEach((k, v) -> features.put(k.toString(), v));
        Map<String, Object> out = new HashMap<>();
        out.put("request_id", r.get("request_id").toString());
        out.put("features", features);
        return out;
      }
      JsonNode node = JSON.readTree(value);
      if (node == null || !node.hasNonNull("request_id") || !node.has("features")) return null;
      Map<String, Object> features = new HashMap<>();
      node.get("features").fields().forEachRemaining(e -> features.put(e.getKey(),
          e.getValue().isNumber() ? (Object) e.getValue().doubleValue() : e.getValue().asText()));
      Map<String, Object> out = new HashMap<>();
      out.put("request_id", node.get("request_id").asText());
      out.put("features", features);
      return out;
    } catch (Exception bad) {
      return null;
    }
  }

  static Map<String, String> options(String[] args) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) throw new IllegalArgumentException("expected --name value, got " + args[i]);
      out.put(args[i].substring(2), args[i + 1]);
    }
    return out;
  }

  static String need(Map<String, String> opt, String name) {
    String v = opt.get(name);
    if (v == null) {
      System.err.println("usage: ModelWorker --bootstrap HOST:PORT --pipeline P --model-id ID --model lr.json "
          + "--schemas schemas/avro [--model-version 1] [--role challenger] [--offset-reset latest|earliest]\nmissing --" + name);
      System.exit(2);
    }
    return v;
  }
}
