// The identity providers' sample approach, as a proxy for bench/run: Express validates the
// bearer token with express-oauth2-jwt-bearer (Auth0's SDK; remote JWKS, RS256) and forwards
// with http-proxy-middleware. Same policy as the other targets: /public/** open,
// /api/user/** needs read:data, /api/admin/** needs admin. One process, one core.
"use strict";
const express = require("express");
const { auth, requiredScopes } = require("express-oauth2-jwt-bearer");
const { createProxyMiddleware } = require("http-proxy-middleware");
const http = require("http");

const { PORT, ISSUER, AUDIENCE, JWKS_URI, UPSTREAM } = process.env;
const app = express();
app.disable("x-powered-by");
const check = auth({ issuer: ISSUER, audience: AUDIENCE, jwksUri: JWKS_URI, tokenSigningAlg: "RS256" });
const proxy = createProxyMiddleware({
  target: UPSTREAM,
  agent: new http.Agent({ keepAlive: true, maxSockets: 256 }),
  on: {
    proxyReq: (proxyReq, req) => {
      proxyReq.removeHeader("x-client-id");
      proxyReq.removeHeader("x-scopes");
      if (req.auth) {
        proxyReq.setHeader("x-client-id", String(req.auth.payload.client_id || req.auth.payload.sub));
        proxyReq.setHeader("x-scopes", String(req.auth.payload.scope || ""));
      }
    },
  },
});
// Mounted at the root so req.url (what the proxy forwards) keeps its full path.
const needs = { read: requiredScopes("read:data"), admin: requiredScopes("admin") };
const guarded = (scope) => (req, res, next) =>
  check(req, res, (err) => (err ? next(err) : needs[scope](req, res, next)));
const guards = [["/public/", null], ["/api/user/", guarded("read")], ["/api/admin/", guarded("admin")]];
app.use((req, res, next) => {
  const found = guards.find(([prefix]) => req.path.startsWith(prefix));
  if (!found) return res.status(404).json({ error: "not_found" });
  return found[1] ? found[1](req, res, next) : next();
});
app.use(proxy);
// express-oauth2-jwt-bearer errors carry the RFC 6750 status (401/403).
app.use((err, req, res, next) => res.status(err.status || 500).json({ error: err.code || "server_error" }));
app.listen(Number(PORT), "127.0.0.1");
