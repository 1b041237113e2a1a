import { defineConfig } from 'drizzle-kit';

// Migrations are generated from src/db/schema with `npm run db:generate` and never edited by hand;
// what a schema cannot say (triggers) goes in a custom migration (`drizzle-kit generate --custom`).
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema/index.ts',
  out: './drizzle',
  casing: 'snake_case',
});
