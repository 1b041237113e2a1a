import type { Deps } from '../deps.js';
import { newRouter } from '../http/router.js';
import { announceRoutes } from './announce-routes.js';
import { deliveryRoutes } from './delivery-routes.js';
import { emailRoutes } from './email-routes.js';
import { endpointRoutes } from './endpoint-routes.js';

/** Every notification route: webhook endpoints, their deliveries, per-user email, announcing a duplicate. */
export function notifyRoutes(deps: Deps) {
  const r = newRouter();
  r.route('/', endpointRoutes(deps));
  r.route('/', deliveryRoutes(deps));
  r.route('/', emailRoutes(deps));
  r.route('/', announceRoutes(deps));
  return r;
}
