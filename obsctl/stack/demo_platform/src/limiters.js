'use strict';

/** The fixed set of rate limiters: their names are the only values of the `limiter` label. */
const LIMITERS = ['global', 'ip', 'user', 'task_create'];

module.exports = { LIMITERS };
