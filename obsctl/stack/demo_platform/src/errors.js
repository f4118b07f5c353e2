'use strict';

/** An error that maps to an HTTP response with a JSON body. */
class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.error);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
  }

  /** 400 naming the offending field. */
  static invalid(field, message) {
    return new ApiError(400, { error: 'invalid_request', field, message: `${field}: ${message}` });
  }

  static notFound(what = 'not_found') {
    return new ApiError(404, { error: what });
  }
}

module.exports = { ApiError };
