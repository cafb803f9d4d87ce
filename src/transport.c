/*
** cfaccess transport: one libcurl easy handle per client, configured once
** (security options, timeouts, callbacks), and one multi handle that runs
** the exchanges (one, or a batch's several at once) on that handle or on
** copies of it. The callbacks only copy bytes into C buffers that the
** client owns; they never call Lua, so no Lua error can longjmp through
** libcurl.
*/
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* The only file-scope state: the once-flag for curl_global_init. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT; /* written once, under once */

static void global_init_once(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int cf_transport_global_init(void) {
  pthread_once(&global_once, global_init_once);
  return global_rc == CURLE_OK;
}

/* ---- callbacks (no Lua in here) ------------------------------------- */

/* The cap (max_response_bytes) counts every byte received; going over it,
** or running out of memory, aborts the transfer (CURLE_WRITE_ERROR) with
** b->too_big or b->oom set. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  cf_buf *b = (cf_buf *)ud;
  size_t n = size * nmemb;
  return cf_buf_append(b, ptr, n) ? n : 0;
}

/* Copy a header value (trimmed) into dst, truncating to its size. */
static void keep(char *dst, size_t dstlen, const char *v, size_t n) {
  if (n >= dstlen) n = dstlen - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *ud) {
  cf_exchange *x = (cf_exchange *)ud;
  size_t n = size * nitems, nl, vs, ve;
  const char *colon;
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {  /* a new response begins */
    memset(&x->hdrs, 0, sizeof x->hdrs);
    return n;
  }
  colon = (const char *)memchr(ptr, ':', n);
  if (colon == NULL) return n;
  nl = (size_t)(colon - ptr);
  vs = nl + 1;
  ve = n;
  while (vs < ve && (ptr[vs] == ' ' || ptr[vs] == '\t')) vs++;
  while (ve > vs && (ptr[ve - 1] == '\r' || ptr[ve - 1] == '\n' ||
                     ptr[ve - 1] == ' ' || ptr[ve - 1] == '\t')) ve--;
#define HDR_IS(name) (nl == sizeof(name) - 1 && strncasecmp(ptr, name, nl) == 0)
  if (HDR_IS("cf-ray")) {
    /* A ray id is hex, a dash and a colo code; anything else (a proxy that
    ** echoes request headers, say), or too long to keep whole, is dropped;
    ** the client then redacts its credential from what is kept. */
    size_t i;
    for (i = vs; i < ve && (isalnum((unsigned char)ptr[i]) || ptr[i] == '-'); i++) {}
    if (i == ve && ve - vs < sizeof x->hdrs.ray)
      keep(x->hdrs.ray, sizeof x->hdrs.ray, ptr + vs, ve - vs);
  }
  else if (HDR_IS("retry-after"))
    keep(x->hdrs.retry_after, sizeof x->hdrs.retry_after, ptr + vs, ve - vs);
  else if (HDR_IS("retry-after-ms"))
    keep(x->hdrs.retry_after_ms, sizeof x->hdrs.retry_after_ms, ptr + vs,
         ve - vs);
  else if (HDR_IS("x-should-retry"))
    keep(x->hdrs.should_retry, sizeof x->hdrs.should_retry, ptr + vs, ve - vs);
  else if (HDR_IS("ratelimit"))
    keep(x->hdrs.ratelimit, sizeof x->hdrs.ratelimit, ptr + vs, ve - vs);
  else if (HDR_IS("date"))
    keep(x->hdrs.date, sizeof x->hdrs.date, ptr + vs, ve - vs);
#undef HDR_IS
  return n;
}

/* The request body is fed by a read callback (not CURLOPT_POSTFIELDS) so
** that the seek callback below decides whether libcurl may send it again. */
static size_t on_read(char *ptr, size_t size, size_t nitems, void *ud) {
  cf_exchange *x = (cf_exchange *)ud;
  size_t n = size * nitems, left = x->body_len - x->body_pos;
  if (n > left) n = left;
  memcpy(ptr, x->body + x->body_pos, n);
  x->body_pos += n;
  x->body_read += n;
  return n;
}

/* libcurl calls this to rewind the body before it re-sends a request by
** itself (a reused keep-alive connection that died). For a create that
** re-send could duplicate the policy, so it is refused: the transfer then
** fails with CURLE_SEND_FAIL_REWIND and the client checks what happened. */
static int on_seek(void *ud, curl_off_t offset, int origin) {
  cf_exchange *x = (cf_exchange *)ud;
  if (x->no_rewind) {
    x->rewind_refused = 1;
    return CURL_SEEKFUNC_CANTSEEK;
  }
  if (origin != SEEK_SET || offset < 0 || (size_t)offset > x->body_len)
    return CURL_SEEKFUNC_FAIL;
  x->body_pos = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

#if CF_PREREQ_GUARD
/* Called right before libcurl sends the request, on the first try and on
** each of its own silent retries. A create may go out once only. */
static int on_prereq(void *ud, char *pip, char *lip, int pport, int lport) {
  cf_exchange *x = (cf_exchange *)ud;
  (void)pip; (void)lip; (void)pport; (void)lport;
  if (++x->sends > 1 && x->no_rewind) {
    x->rewind_refused = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}
#endif

/* ---- handle setup ---------------------------------------------------- */

#define SET(opt, val) \
  do { if (rc == CURLE_OK) { rc = curl_easy_setopt(h, opt, val); what = #opt; } } while (0)

int cf_transport_init(cf_transport *t, const cf_transport_cfg *cfg, char *err,
                      size_t errlen) {
  CURLcode rc = CURLE_OK;
  const char *what = "curl_easy_init";
  long low_speed_time = cfg->timeout_ms / 1000;
  const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
  CURL *h = curl_easy_init();
  if (h == NULL) {
    snprintf(err, errlen, "curl_easy_init failed");
    return 0;
  }
  t->easy = h;
  t->copy_each = vi == NULL || vi->version_num < 0x080100;
  t->multi = curl_multi_init();
  if (t->multi == NULL) {
    snprintf(err, errlen, "curl_multi_init failed");
    cf_transport_cleanup(t);
    return 0;
  }
  if (t->copy_each) {
    t->share = curl_share_init();
    if (t->share == NULL ||
        curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
      snprintf(err, errlen, "curl_share_init failed");
      cf_transport_cleanup(t);
      return 0;
    }
  }
  SET(CURLOPT_SHARE, t->share);
  if (low_speed_time < 1) low_speed_time = 1;
  if (low_speed_time > 30) low_speed_time = 30;
  SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, cfg->allow_http ? "http,https" : "https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
  SET(CURLOPT_PROTOCOLS, cfg->allow_http ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)
                                         : (long)CURLPROTO_HTTPS);
  SET(CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (cfg->cafile) SET(CURLOPT_CAINFO, cfg->cafile);
  if (cfg->proxy) {
    /* An explicit proxy option is what the caller asked for: it carries
    ** every request, whatever NO_PROXY/no_proxy in the environment says
    ** ("" = no host bypasses it). The client refuses a proxy with a
    ** plain-http base URL before it gets here. */
    SET(CURLOPT_PROXY, cfg->proxy);
    SET(CURLOPT_NOPROXY, "");
  }
  /* Plain http is for loopback only: never hand it (and the credentials
  ** in its headers) to a proxy from the environment. */
  else if (cfg->allow_http) SET(CURLOPT_NOPROXY, "*");
  SET(CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
  SET(CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
  t->timeout_ms = cfg->timeout_ms;
  SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
  SET(CURLOPT_LOW_SPEED_TIME, low_speed_time);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_USERAGENT, cfg->user_agent);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_READFUNCTION, on_read);
  SET(CURLOPT_SEEKFUNCTION, on_seek);
#if CF_PREREQ_GUARD
  SET(CURLOPT_PREREQFUNCTION, on_prereq);
#endif
  if (rc != CURLE_OK) {
    /* Only the option name and curl's text: never a value (cafile/proxy
    ** values are not secret, but a proxy URL may carry a password). */
    snprintf(err, errlen, "%s: %s", what, curl_easy_strerror(rc));
    cf_transport_cleanup(t);
    return 0;
  }
  return 1;
}

void cf_transport_cleanup(cf_transport *t) {
  /* easy handles are never left in the multi; the share goes last */
  if (t->easy) curl_easy_cleanup(t->easy);
  t->easy = NULL;
  if (t->multi) curl_multi_cleanup(t->multi);   /* closes the connections */
  t->multi = NULL;
  if (t->share) curl_share_cleanup(t->share);
  t->share = NULL;
}

/* Reset x's outputs and hand it to the multi handle on an easy handle of
** its own: the configured one when it is free (and may be reused), else a
** copy. Returns 1, or 0 with x->rc and x->errbuf set (x is then finished).
** pipewait: prefer waiting for a connection that may multiplex (HTTP/2). */
int cf_transport_start(cf_transport *t, cf_exchange *x, int pipewait) {
  CURLcode rc = CURLE_OK;
  const char *what = "";
  int has_body = x->body != NULL;
  CURL *h;
  (void)what;
  cf_buf_reset(x->resp);
  x->body_pos = x->body_read = 0;
  x->rewind_refused = 0;
  x->sends = 0;
  x->status = 0;
  x->finished = 0;
  x->errbuf[0] = '\0';
  memset(&x->hdrs, 0, sizeof x->hdrs);
  if (t->copy_each || t->easy_busy) h = curl_easy_duphandle(t->easy);
  else {
    h = t->easy;
    t->easy_busy = 1;
  }
  x->h = h;
  if (h == NULL) {
    x->rc = CURLE_OUT_OF_MEMORY;
    x->finished = 1;
    snprintf(x->errbuf, sizeof x->errbuf, "curl_easy_duphandle failed");
    return 0;
  }
  if (h != t->easy) SET(CURLOPT_SHARE, t->share);
  SET(CURLOPT_PRIVATE, (void *)x);
  SET(CURLOPT_PIPEWAIT, (long)(pipewait != 0));
  SET(CURLOPT_ERRORBUFFER, x->errbuf);
  SET(CURLOPT_URL, x->url);
  SET(CURLOPT_TIMEOUT_MS, x->timeout_ms > 0 ? x->timeout_ms : t->timeout_ms);
  SET(CURLOPT_HTTPHEADER, x->headers);
  SET(CURLOPT_WRITEDATA, (void *)x->resp);
  SET(CURLOPT_HEADERDATA, (void *)x);
  SET(CURLOPT_READDATA, (void *)x);
  SET(CURLOPT_SEEKDATA, (void *)x);
#if CF_PREREQ_GUARD
  SET(CURLOPT_PREREQDATA, (void *)x);
  if (has_body) {
    /* not copied: x->body outlives the transfer */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    SET(CURLOPT_POSTFIELDS, (char *)x->body);
  } else {
    SET(CURLOPT_POSTFIELDS, (char *)NULL);
    SET(CURLOPT_HTTPGET, 1L);
  }
#else
  if (has_body) {
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, (char *)NULL);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
  } else {
    SET(CURLOPT_HTTPGET, 1L);
  }
#endif
  SET(CURLOPT_CUSTOMREQUEST,
      (strcmp(x->method, "GET") == 0 || strcmp(x->method, "POST") == 0)
          ? (char *)NULL : (char *)x->method);
  if (rc == CURLE_OK) {
    CURLMcode mc = curl_multi_add_handle(t->multi, h);
    if (mc == CURLM_OK) {
      x->running = 1;
      return 1;
    }
    snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_multi_strerror(mc));
    rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
  }
  x->rc = rc;
  x->finished = 1;
  if (x->errbuf[0] == '\0')
    snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_easy_strerror(rc));
  return 0;
}

/* Mark the exchanges whose transfers are done (CURLOPT_PRIVATE leads to
** each: whichever caller drives the multi, the right exchange learns). */
static int collect(CURLM *multi) {
  CURLMsg *msg;
  int left, n = 0;
  while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
    if (msg->msg == CURLMSG_DONE) {
      char *p = NULL;
      cf_exchange *x;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
      x = (cf_exchange *)(void *)p;
      if (x != NULL && x->running && x->h == msg->easy_handle) {
        x->rc = msg->data.result;
        x->finished = 1;
        n++;
      }
    }
  }
  return n;
}

int cf_transport_drive(cf_transport *t, long timeout_ms) {
  int running = 0, n;
  CURLMcode mc = curl_multi_perform(t->multi, &running);
  n = collect(t->multi);
  if (mc == CURLM_OK && n == 0 && running > 0 && timeout_ms > 0) {
    /* the wait is capped by libcurl's own timers (timeouts, low speed) */
    mc = curl_multi_poll(t->multi, NULL, 0, (int)timeout_ms, NULL);
    if (mc == CURLM_OK) mc = curl_multi_perform(t->multi, &running);
    n = collect(t->multi);
  }
  return mc == CURLM_OK ? n : -1;
}

void cf_transport_finish(cf_transport *t, cf_exchange *x) {
  CURL *h = x->h;
  if (h == NULL) return;
  if (x->running) curl_multi_remove_handle(t->multi, h);
  x->running = 0;
  if (!x->finished) {         /* aborted */
    x->finished = 1;
    x->rc = CURLE_ABORTED_BY_CALLBACK;
  }
  if (x->rc != CURLE_OK && x->errbuf[0] == '\0')
    snprintf(x->errbuf, sizeof x->errbuf, "%s", curl_easy_strerror(x->rc));
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
#if CF_PREREQ_GUARD
  if (x->body != NULL) {
    /* The body goes with the request: count it as handed over once a send
    ** began (a failure before that, e.g. connect, cannot have reached). */
    if (x->sends > 0) x->body_read = x->body_len;
  }
#endif
  curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)NULL);
  if (h != t->easy) curl_easy_cleanup(h);   /* the connection stays shared */
  else {
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, (char *)NULL);
    t->easy_busy = 0;
  }
  x->h = NULL;
}

/* ---- base-URL policy ------------------------------------------------- */

/* Is host (as returned by curl_url_get) loopback? */
static int host_is_loopback(const char *h) {
  unsigned char a4[4], a6[16];
  char tmp[64];
  size_t n = strlen(h);
  if (strcmp(h, "localhost") == 0) return 1;
  if (inet_pton(AF_INET, h, a4) == 1) return a4[0] == 127;
  if (n > 2 && n < sizeof tmp && h[0] == '[' && h[n - 1] == ']') {
    memcpy(tmp, h + 1, n - 2);
    tmp[n - 2] = '\0';
    if (inet_pton(AF_INET6, tmp, a6) == 1) {
      static const unsigned char one[16] = {0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1};
      return memcmp(a6, one, 16) == 0;
    }
  }
  return 0;
}

const char *cf_transport_check_url(const char *url, int *http) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *user = NULL, *query = NULL, *frag = NULL;
  const char *problem = NULL;
  if (u == NULL) return "cannot be parsed (not enough memory)";
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
    problem = "is not a valid URL";
  else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
           curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    problem = "is not a valid URL";
  else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
    problem = "must not contain credentials";
  else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
           curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
    problem = "must not have a query or fragment";
  else if (strcmp(scheme, "https") == 0)
    *http = 0;
  else if (strcmp(scheme, "http") == 0) {
    if (host_is_loopback(host)) *http = 1;
    else problem = "must use https (plain http only for loopback hosts)";
  } else
    problem = "must use https";
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_free(query);
  curl_free(frag);
  curl_url_cleanup(u);
  return problem;
}
