// A Node.js caller of messagelog.v1, loading the contract from protos/ at run time.
//
//   node caller.js <host:port> <request.json>
//
// Sends the AddMessageLogRequest in request.json (as proto-loader takes it: proto JSON with the
// .proto's field names and enum names, but a Timestamp as {"seconds": "...", "nanos": 0}) with the metadata
// "crm-authorization" from MESSAGELOG_CRM_AUTHORIZATION, and prints one JSON line: the response,
// or the error with its google.rpc details (ErrorInfo, BadRequest, RetryInfo) decoded from the
// "grpc-status-details-bin" trailer. Exits 0 on success, 1 on an error status.
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PROTOS = process.env.MESSAGELOG_PROTOS || path.resolve(__dirname, "..", "..", "protos");
// How proto-loader shows messages: field names as in the .proto, enums by name, 64-bit as strings.
const LOADING = { keepCase: true, enums: String, longs: String, defaults: false, oneofs: true };

function loadService() {
  const definition = protoLoader.loadSync("messagelog/v1/message_log_service.proto", {
    ...LOADING,
    includeDirs: [PROTOS],
  });
  return grpc.loadPackageDefinition(definition).messagelog.v1.MessageLogService;
}

// google.rpc.Status and the detail types the service sends, from protos/google/rpc/.
function loadErrorTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    const local = path.join(PROTOS, target);
    // google/protobuf/*.proto are built into protobufjs.
    return fs.existsSync(local) ? local : target;
  };
  root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
  return root;
}

function decodeDetails(error, types) {
  const [raw] = error.metadata ? error.metadata.get("grpc-status-details-bin") : [];
  if (!raw) {
    return [];
  }
  const status = types.lookupType("google.rpc.Status").decode(raw);
  return status.details.map((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    const type = types.lookupType(typeName);
    const detail = type.toObject(type.decode(any.value), { longs: String, enums: String });
    return { "@type": typeName, ...detail };
  });
}

function main() {
  const [target, requestFile] = process.argv.slice(2);
  if (!target || !requestFile) {
    console.error("usage: node caller.js <host:port> <request.json>");
    process.exit(2);
  }
  const request = JSON.parse(fs.readFileSync(requestFile, "utf8"));
  const MessageLogService = loadService();
  const types = loadErrorTypes();
  const client = new MessageLogService(target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  const authorization = process.env.MESSAGELOG_CRM_AUTHORIZATION;
  if (authorization) {
    metadata.set("crm-authorization", authorization);
  }
  const deadline = new Date(Date.now() + 10000);
  client.AddMessageLog(request, metadata, { deadline }, (error, response) => {
    if (error) {
      const name = Object.keys(grpc.status).find((key) => grpc.status[key] === error.code);
      console.log(JSON.stringify({ error: { code: name, message: error.details, details: decodeDetails(error, types) } }));
      process.exitCode = 1;
    } else {
      console.log(JSON.stringify({ response }));
    }
    client.close();
  });
}

main();
