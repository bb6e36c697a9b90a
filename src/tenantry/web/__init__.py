"""The dashboard: server-rendered pages for people, served by the same process as the API.

Pages call the same domain services as the API's routes, with the same authorization. A person
is signed in by a cookie tied to an identity login session (`web.session`); every form is
checked for a same-origin request and the session's CSRF token (`web.guard`)."""
