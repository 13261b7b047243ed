#!/usr/bin/env node
// A Rendezvous model worker outside the Python codebase, speaking the public contract:
// reads PIPELINE.requests (Avro single-object encoding or JSON), writes one JSON Score per
// request to PIPELINE.scores, keyed by request_id, on the request's own partition.
//
// The model is a logistic regression exported as plain numbers (pipelines/train.py,
// export_linear): p(1) = 1 / (1 + exp(-(intercept + sum coef[i] * x[features[i]]))).
// Offsets are committed after the batch's Scores were acknowledged (at least once; the
// rendezvous counts a repeated Score once).
//
// usage: node worker.js --bootstrap HOST:PORT --pipeline P --model-id ID --model lr.json
//                       --schemas schemas/avro [--model-version 1] [--role challenger]
'use strict';

const fs = require('fs');
const path = require('path');
const avro = require('avsc');
const { Kafka, logLevel } = require('kafkajs');

function options(argv) {
  const out = {};
  for (let i = 0; i + 1 < argv.length; i += 2) {
    if (!argv[i].startsWith('--')) throw new Error(`expected --name value, got ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const name of ['bootstrap', 'pipeline', 'model-id', 'model', 'schemas']) {
    if (!out[name]) {
      console.error(`usage: node worker.js --bootstrap HOST:PORT --pipeline P --model-id ID --model lr.json ` +
                    `--schemas schemas/avro [--model-version 1] [--role challenger]\nmissing --${name}`);
      process.exit(2);
    }
  }
  return out;
}

// CRC-64-AVRO (the Avro spec's Rabin fingerprint) of a schema's parsing canonical form:
// the 8 bytes after 0xC3 0x01 in a single-object encoded message.
const EMPTY = 0xc15d213aa4d7a795n;
const TABLE = (() => {
  const t = [];
  for (let i = 0n; i < 256n; i++) {
    let fp = i;
    for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
    t.push(fp & 0xffffffffffffffffn);
  }
  return t;
})();
function fingerprint(text) {
  let fp = EMPTY;
  for (const b of Buffer.from(text, 'utf8')) fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(b)) & 0xffn)];
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(fp & 0xffffffffffffffffn);
  return out;
}

function decoder(schemaDir) {
  const type = avro.Type.forSchema(JSON.parse(fs.readFileSync(path.join(schemaDir, 'Request.avsc'), 'utf8')));
  const expected = fingerprint(JSON.stringify(type.getSchema()));  // avsc: the parsing canonical form
  return (value) => {
    try {
      if (value.length > 10 && value[0] === 0xc3 && value[1] === 0x01) {
        if (!value.subarray(2, 10).equals(expected)) return null;  // written with another schema
        const r = type.fromBuffer(value.subarray(10));
        return { request_id: r.request_id, features: unwrap(r.features) };
      }
      const r = JSON.parse(value.toString('utf8'));
      if (!r || typeof r.request_id !== 'string' || typeof r.features !== 'object') return null;
      return r;
    } catch (bad) {
      return null;  // undecodable: the decoy reports it to the DLQ
    }
  };
}

// avsc decodes a union value either bare or wrapped as {"double": 1.5}, depending on the union
function unwrap(features) {
  const out = {};
  for (const [k, v] of Object.entries(features || {})) {
    out[k] = v !== null && typeof v === 'object' ? Object.values(v)[0] : v;
  }
  return out;
}

async function main() {
  const opt = options(process.argv.slice(2));
  const model = JSON.parse(fs.readFileSync(opt.model, 'utf8'));
  const decode = decoder(opt.schemas);
  const kafka = new Kafka({ clientId: `rdv-node-${opt['model-id']}`, brokers: [opt.bootstrap], logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({ groupId: `rdv-${opt.pipeline}-ext-${opt['model-id']}`, maxWaitTimeInMs: 10 });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [`${opt.pipeline}.requests`], fromBeginning: opt['offset-reset'] === 'earliest' });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const parts = Object.values(e.payload.memberAssignment).reduce((n, ps) => n + ps.length, 0);
    console.log(`ready: ${opt['model-id']} scoring ${parts} partitions of ${opt.pipeline}.requests`);
  });
  const stop = async () => {
    await consumer.disconnect();
    await producer.disconnect();
    console.log(`stopped: ${opt['model-id']}`);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      const started = process.hrtime.bigint();
      const scores = [];
      for (const message of batch.messages) {
        const request = decode(message.value);
        if (request) scores.push(score(model, opt, request));
      }
      const latency = Number(process.hrtime.bigint() - started) / 1e6;
      if (scores.length) {
        await producer.send({
          topic: `${opt.pipeline}.scores`,
          acks: -1,
          messages: scores.map((s) => ({
            key: s.request_id, partition: batch.partition, value: JSON.stringify({ ...s, latency_ms: latency }),
          })),
        });
      }
      const last = batch.messages[batch.messages.length - 1];
      if (last) {
        resolveOffset(last.offset);
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition,
                                        offset: (BigInt(last.offset) + 1n).toString() }]);
      }
      await heartbeat();
    },
  });
}

function score(model, opt, request) {
  const out = { request_id: request.request_id, model_id: opt['model-id'], model_version: opt['model-version'] || '1',
                role: opt.role || 'challenger' };
  let z = model.intercept;
  for (let i = 0; i < model.features.length; i++) {
    const v = request.features[model.features[i]];
    if (typeof v !== 'number') {
      return { ...out, prediction: null, probabilities: null, status: 'error',
               error: `feature '${model.features[i]}' is ${v === undefined || v === null ? 'missing' : 'not a number'}` };
    }
    z += model.coef[i] * v;
  }
  const p1 = 1 / (1 + Math.exp(-z));
  return { ...out, prediction: p1 >= 0.5 ? 1 : 0, probabilities: { '0': 1 - p1, '1': p1 }, status: 'ok', error: null };
}

main().catch((err) => {
  console.error(`worker failed: ${err.stack || err}`);
  process.exit(1);
});
