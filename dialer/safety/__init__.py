"""Safety of the console and the webhook (issue 17).

`throttle`: pure rules over `now` (sign-in lockout with backoff, token buckets).
`csrf`: signed double-submit tokens and the middleware that checks every state-changing request.
`guards`: the ASGI middlewares (security headers, webhook rate limit) and `install_guards(app)`.
"""
