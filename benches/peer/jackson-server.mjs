// The benchmark's peer: SAML Jackson (@boxyhq/saml-jackson, installed by benches/peer/setup)
// run in-process behind Node's http module, serving the two routes the benchmark drives:
//
//   POST /api/oauth/saml                      the ACS (IdP-initiated SAMLResponse → 302 with a code)
//   /api/scim/v2.0/<directoryId>/Users[/<id>] and /Groups[/<id>]   SCIM 2.0 (Bearer token)
//
// Usage: node benches/peer/jackson-server.mjs <port>
//
// Configuration: the environment, or else (when SSO_PEER_IDP_CERT and SSO_PEER_IDP_CERT_FILE are
// both unset) a JSON object read from stdin until EOF:
//   idpCertPem   (SSO_PEER_IDP_CERT, or a file named by SSO_PEER_IDP_CERT_FILE) the IdP's signing
//                certificate, PEM; required
//   idpEntityId  (SSO_PEER_IDP_ENTITY_ID) the IdP's entity ID = the Issuer of its responses;
//                default "http://127.0.0.1/idp"
//   audience     (SSO_PEER_AUDIENCE) Jackson's samlAudience; default http://127.0.0.1:<port>/saml
//   database     (SSO_PEER_DATABASE) "sqlite" (default) or "mem"
//   dbFile       (SSO_PEER_DB_FILE) the SQLite file; default a new file in a temporary folder
//                that is removed on SIGTERM/SIGINT
//   peerDir      (SSO_PEER_DIR) the folder benches/peer/setup printed; default
//                ${SSO_CACHE_DIR:-$HOME/.cache/sso-operator}/peer
//   workers      (SSO_PEER_WORKERS) Node processes serving the port (node:cluster); default 1.
//                More than 1 needs "sqlite" (a "mem" store would be per process): the primary
//                creates the connection and the directory, then starts the workers one after
//                the other on the same SQLite file.
//   sqliteDefaults (SSO_PEER_SQLITE_DEFAULTS=1) keep SQLite's journal and sync defaults
//                (see tuneSqlite)
// SSO_PEER_DEBUG=1 lets Jackson log (errors included) to stderr; otherwise the server is silent.
//
// When ready it prints one JSON line to stdout:
//   {"acsUrl", "audience", "scimPrefix", "scimToken", "database", "databaseFile", "idpEntityId",
//    "workers"}
// and runs until killed (SIGTERM/SIGINT: workers stopped, temporary folder removed).
import cluster from "node:cluster";
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";

const host = "127.0.0.1";
const tenant = "bench";
const product = "sso-operator";
const WORKER_ENV = "SSO_PEER_WORKER_CONFIG";

function fail(message) {
  process.stderr.write(`jackson-server: ${message}\n`);
  process.exit(1);
}

function readConfig() {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write("usage: node jackson-server.mjs <port>\n");
    process.exit(2);
  }
  const base = `http://${host}:${port}`;
  const env = process.env;
  let json = {};
  if (!env.SSO_PEER_IDP_CERT && !env.SSO_PEER_IDP_CERT_FILE) {
    const text = readFileSync(0, "utf8").trim();
    json = text ? JSON.parse(text) : {};
  }
  const certFile = env.SSO_PEER_IDP_CERT_FILE;
  const config = {
    port,
    base,
    idpCertPem: json.idpCertPem || env.SSO_PEER_IDP_CERT || (certFile ? readFileSync(certFile, "utf8") : ""),
    idpEntityId: json.idpEntityId || env.SSO_PEER_IDP_ENTITY_ID || "http://127.0.0.1/idp",
    audience: json.audience || env.SSO_PEER_AUDIENCE || `${base}/saml`,
    database: json.database || env.SSO_PEER_DATABASE || "sqlite",
    dbFile: json.dbFile || env.SSO_PEER_DB_FILE || "",
    peerDir:
      json.peerDir ||
      env.SSO_PEER_DIR ||
      join(env.SSO_CACHE_DIR || join(homedir(), ".cache", "sso-operator"), "peer"),
    workers: Number(json.workers || env.SSO_PEER_WORKERS || 1),
    sqliteDefaults: Boolean(json.sqliteDefaults || env.SSO_PEER_SQLITE_DEFAULTS === "1"),
  };
  if (!config.idpCertPem.includes("BEGIN CERTIFICATE")) {
    fail("the IdP certificate (idpCertPem / SSO_PEER_IDP_CERT) is missing or not PEM");
  }
  if (config.database !== "sqlite" && config.database !== "mem") {
    fail(`database must be "sqlite" or "mem", not ${JSON.stringify(config.database)}`);
  }
  if (!Number.isInteger(config.workers) || config.workers < 1) {
    fail("workers must be a positive integer");
  }
  if (config.workers > 1 && config.database !== "sqlite") {
    fail('more than one worker needs database "sqlite" (each process would have its own "mem" store)');
  }
  return config;
}

// IdP metadata as an IdP would publish it: entity ID, signing certificate, POST SSO endpoint.
function idpMetadata(entityId, certPem) {
  const der = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
  const escape = (s) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  return `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${escape(entityId)}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data><ds:X509Certificate>${der}</ds:X509Certificate></ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="http://127.0.0.1/idp/sso"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="http://127.0.0.1/idp/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
`;
}

// Jackson's SQLite store goes through TypeORM's better-sqlite3 driver, which opens the file with
// SQLite's defaults (rollback journal, synchronous=FULL: an fsync per commit) and passes no
// pragmas through. Our store runs WAL with synchronous=NORMAL, so for the same durability the
// peer's connection gets the same two pragmas, set right after the file is opened.
// With several worker processes on one file, TypeORM's deferred "BEGIN TRANSACTION" (a read, then
// the write) fails at once with SQLITE_BUSY ("database is locked") whenever another process wrote
// in between, and Jackson turns that into failed sign-ins and empty 201s; BEGIN IMMEDIATE takes
// the write lock up front, so writers wait (busy timeout 5 s) instead.
function tuneSqlite(require, { pragmas, immediate }) {
  const id = require.resolve("better-sqlite3");
  const Database = require("better-sqlite3");
  class TunedDatabase extends Database {
    constructor(filename, options) {
      super(filename, options);
      if (pragmas && filename !== ":memory:") {
        this.pragma("journal_mode = WAL");
        this.pragma("synchronous = NORMAL");
      }
    }

    prepare(sql) {
      return super.prepare(immediate && sql === "BEGIN TRANSACTION" ? "BEGIN IMMEDIATE TRANSACTION" : sql);
    }
  }
  require.cache[id].exports = TunedDatabase;
}

async function startJackson(config) {
  const require = createRequire(join(config.peerDir, "package.json"));
  let jacksonModule;
  try {
    jacksonModule = require("@boxyhq/saml-jackson");
  } catch (err) {
    fail(`cannot load @boxyhq/saml-jackson from ${config.peerDir} (run benches/peer/setup): ${err.message}`);
  }
  if (config.database === "sqlite") {
    tuneSqlite(require, { pragmas: !config.sqliteDefaults, immediate: config.workers > 1 });
  }
  const quiet = () => {};
  const logger = process.env.SSO_PEER_DEBUG
    ? { info: (m) => console.error(m), warn: (m) => console.error(m), error: (...m) => console.error(...m) }
    : { info: quiet, warn: quiet, error: quiet };
  return await (jacksonModule.controllers || jacksonModule.default)({
    externalUrl: config.base,
    samlPath: "/api/oauth/saml",
    samlAudience: config.audience,
    idpEnabled: true, // IdP-initiated sign-ins (no RelayState)
    noAnalytics: true,
    scimPath: "/api/scim/v2.0",
    db: config.database === "sqlite" ? { engine: "sql", type: "sqlite", url: config.dbFile } : { engine: "mem" },
    logger,
    // Embedded use: directory events go to this callback instead of Jackson's webhook sender
    // (no webhook is configured, so the hosted service would only look the directory up again).
    dsync: { callback: async () => {} },
  });
}

// The SAML connection (from IdP metadata) and the SCIM directory the benchmark uses.
async function createFixtures(jackson, config) {
  const appUrl = `${config.base}/app/callback`;
  await jackson.connectionAPIController.createSAMLConnection({
    rawMetadata: idpMetadata(config.idpEntityId, config.idpCertPem),
    tenant,
    product,
    name: "bench-idp",
    defaultRedirectUrl: appUrl,
    redirectUrl: [appUrl],
  });
  const { data: directory, error } = await jackson.directorySyncController.directories.create({
    name: "bench-scim",
    tenant,
    product,
    type: "okta-scim-v2",
  });
  if (error) {
    throw new Error(`creating the SCIM directory: ${error.message}`);
  }
  return directory;
}

const MAX_BODY = 1 << 20; // Next.js's default body limit (1 MB)

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error("body too large"), { statusCode: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res, status, headers, body = "") {
  res.writeHead(status, { "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function serve(jackson, config, onListening) {
  const { oauthController, directorySyncController } = jackson;

  // Jackson's own pages/api/oauth/saml.ts answers every failure with a 302 (to /error, or to the
  // app with error=access_denied); here failures get a 4xx/5xx so wrk counts them as errors.
  async function acs(req, res) {
    if (req.method !== "POST") {
      return send(res, 405, { Allow: "POST" });
    }
    const form = new URLSearchParams(await readBody(req));
    const SAMLResponse = form.get("SAMLResponse");
    if (!SAMLResponse) {
      return send(res, 400, { "Content-Type": "text/plain" }, "SAMLResponse missing\n");
    }
    let result;
    try {
      result = await oauthController.samlResponse({
        SAMLResponse,
        RelayState: form.get("RelayState") || undefined,
        idp_hint: form.get("idp_hint") || undefined,
      });
    } catch (err) {
      // Before validation (unknown issuer, IdP-initiated disabled, bad RelayState...).
      const status = err && Number.isInteger(err.statusCode) && err.statusCode >= 400 ? err.statusCode : 500;
      return send(res, status, { "Content-Type": "text/plain" }, `${err && err.message}\n`);
    }
    if (result.error) {
      // Validation failed (signature, audience, expiry, status): Jackson redirects with the error.
      return send(res, 403, { "Content-Type": "text/plain" }, `${result.error}\n`);
    }
    if (result.redirect_url) {
      return send(res, 302, { Location: result.redirect_url });
    }
    const html = result.app_select_form || result.response_form;
    if (html) {
      return send(res, 200, { "Content-Type": "text/html; charset=utf-8" }, html);
    }
    return send(res, 500, { "Content-Type": "text/plain" }, "no result\n");
  }

  // As Jackson's pages/api/scim/v2.0/[...directory].ts: the directory sync request handler
  // checks the Bearer token against the directory's secret itself.
  async function scim(req, res, url, parts) {
    const [directoryId, resourceType, resourceId] = parts;
    const text = await readBody(req);
    let body;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        const error = { schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], detail: "Invalid JSON", status: "400" };
        return send(res, 400, { "Content-Type": "application/scim+json" }, JSON.stringify(error));
      }
    }
    const tokenParts = (req.headers.authorization || "").split(" ");
    const query = url.searchParams;
    const { status, data } = await directorySyncController.requests.handle({
      method: req.method,
      body,
      directoryId,
      resourceType,
      resourceId,
      apiSecret: tokenParts.length > 1 ? tokenParts[1] : null,
      query: {
        count: query.get("count") ? parseInt(query.get("count"), 10) : undefined,
        startIndex: query.get("startIndex") ? parseInt(query.get("startIndex"), 10) : undefined,
        filter: query.get("filter") || undefined,
      },
    });
    return send(res, status, { "Content-Type": "application/json; charset=utf-8" }, JSON.stringify(data));
  }

  const scimBase = "/api/scim/v2.0/";
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, config.base);
      const path = url.pathname;
      if (path === "/api/oauth/saml") {
        return await acs(req, res);
      }
      if (path.startsWith(scimBase)) {
        const parts = path.slice(scimBase.length).split("/").filter(Boolean).map(decodeURIComponent);
        if (parts.length >= 2 && parts.length <= 3) {
          return await scim(req, res, url, parts);
        }
      }
      if (path === "/app/callback") {
        return send(res, 200, { "Content-Type": "text/plain" }, "signed in\n");
      }
      return send(res, 404, { "Content-Type": "text/plain" }, "not found\n");
    } catch (err) {
      if (!res.headersSent) {
        const status = err && Number.isInteger(err.statusCode) ? err.statusCode : 500;
        send(res, status, { "Content-Type": "text/plain" }, "error\n");
      } else {
        res.destroy();
      }
      if (process.env.SSO_PEER_DEBUG) {
        console.error(err);
      }
    }
  });
  server.keepAliveTimeout = 65_000;
  server.on("error", (err) => fail(`listening on ${host}:${config.port}: ${err.message}`));
  server.listen(config.port, host, onListening);
}

function readyLine(config, directory) {
  return (
    JSON.stringify({
      acsUrl: `${config.base}/api/oauth/saml`,
      audience: config.audience,
      scimPrefix: `/api/scim/v2.0/${directory.id}`,
      scimToken: directory.scim.secret,
      database: config.database,
      databaseFile: config.database === "sqlite" ? config.dbFile : null,
      idpEntityId: config.idpEntityId,
      workers: config.workers,
    }) + "\n"
  );
}

if (cluster.isPrimary) {
  const config = readConfig();
  let tempDir = "";
  if (config.database === "sqlite" && !config.dbFile) {
    tempDir = mkdtempSync(join(tmpdir(), "jackson-peer-"));
    config.dbFile = join(tempDir, "jackson.db");
  }
  let stopping = false;
  const stop = (code) => {
    stopping = true;
    for (const worker of Object.values(cluster.workers || {})) {
      worker.process.kill("SIGTERM");
    }
    if (tempDir) {
      rmSync(tempDir, { recursive: true, force: true });
      tempDir = "";
    }
    process.exit(code);
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    process.on(signal, () => stop(0));
  }
  process.on("exit", () => tempDir && rmSync(tempDir, { recursive: true, force: true }));

  const jackson = await startJackson(config);
  const directory = await createFixtures(jackson, config);
  if (config.workers === 1) {
    serve(jackson, config, () => process.stdout.write(readyLine(config, directory)));
  } else {
    // The workers open the same file; started one at a time (each runs TypeORM's schema sync).
    await jackson.close();
    cluster.on("exit", (worker, code, signal) => {
      if (!stopping) {
        const clean = code === 0 && !signal; // e.g. the process group got the signal first
        if (!clean) {
          process.stderr.write(`jackson-server: worker ${worker.process.pid} exited (${signal || code})\n`);
        }
        stop(clean ? 0 : 1);
      }
    });
    for (let i = 0; i < config.workers; i++) {
      const worker = cluster.fork({ [WORKER_ENV]: JSON.stringify(config) });
      await new Promise((resolve) => worker.once("listening", resolve));
    }
    process.stdout.write(readyLine(config, directory));
  }
} else {
  const config = JSON.parse(process.env[WORKER_ENV]);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    process.on(signal, () => process.exit(0));
  }
  const jackson = await startJackson(config);
  serve(jackson, config, () => {});
}
