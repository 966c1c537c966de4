import { Hono } from "hono";

// Ponder serves an API; this benchmark reads Postgres directly, so it stays empty.
export default new Hono();
