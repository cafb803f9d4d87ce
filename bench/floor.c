/*
** bench/floor.c: the floor the cfaccess client is measured against. A plain
** C program that POSTs the same body to the same URL N times over one
** reused libcurl easy handle (keep-alive), collecting each response into a
** buffer and nothing else: no validation, no JSON, no Lua.
**
**   floor URL BODYFILE N [CONC]
** prints: floor <N> requests <seconds> s <req/s> req/s <cpu-us> us/req
** With CONC > 1 it drives curl multi instead, CONC transfers in flight on
** CONC reused easy handles (each re-added when done), and prints
** "floor_multi ..." (the floor for client:batch at that concurrency).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <curl/curl.h>

typedef struct sink { char *data; size_t len, cap; } sink;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  sink *s = (sink *)ud;
  size_t k = size * n;
  if (s->len + k > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    char *d;
    while (cap < s->len + k) cap *= 2;
    d = (char *)realloc(s->data, cap);
    if (d == NULL) return 0;
    s->data = d;
    s->cap = cap;
  }
  memcpy(s->data + s->len, p, k);
  s->len += k;
  return k;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static CURL *setup(const char *url, struct curl_slist *hd, const char *body,
                   long blen, sink *s) {
  CURL *h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)s);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "cfaccess-floor");
  return h;
}

/* n POSTs with conc in flight on one multi handle. Returns 0 or 1. */
static int run_multi(const char *url, struct curl_slist *hd, const char *body,
                     long blen, long n, long conc) {
  CURLM *m = curl_multi_init();
  CURL **hs = (CURL **)calloc((size_t)conc, sizeof *hs);
  sink *ss = (sink *)calloc((size_t)conc, sizeof *ss);
  long started = 0, done = 0, k;
  int running = 0, left;
  CURLMsg *msg;
  if (m == NULL || hs == NULL || ss == NULL) return 1;
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, conc);
  for (k = 0; k < conc; k++) {
    hs[k] = setup(url, hd, body, blen, &ss[k]);
    if (started < n) {
      curl_multi_add_handle(m, hs[k]);
      started++;
    }
  }
  while (done < n) {
    curl_multi_perform(m, &running);
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
      long status = 0;
      char *p;
      CURL *h = msg->easy_handle;
      if (msg->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      if (msg->data.result != CURLE_OK || status != 201) {
        fprintf(stderr, "floor: request failed: %s (HTTP %ld)\n",
                curl_easy_strerror(msg->data.result), status);
        return 1;
      }
      done++;
      curl_multi_remove_handle(m, h);
      curl_easy_getinfo(h, CURLINFO_PRIVATE, &p);
      ((sink *)(void *)p)->len = 0;
      if (started < n) {
        curl_multi_add_handle(m, h);
        started++;
      }
    }
    if (done < n) curl_multi_poll(m, NULL, 0, 1000, NULL);
  }
  for (k = 0; k < conc; k++) {
    curl_easy_cleanup(hs[k]);
    free(ss[k].data);
  }
  curl_multi_cleanup(m);
  free(hs);
  free(ss);
  return 0;
}

int main(int argc, char **argv) {
  FILE *f;
  char *body;
  long blen, i, n;
  CURL *h;
  struct curl_slist *hd = NULL;
  sink s = {NULL, 0, 0};
  double t0, c0, t, c;
  long conc = argc == 5 ? atol(argv[4]) : 1;
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: floor URL BODYFILE N [CONC]\n");
    return 2;
  }
  n = atol(argv[3]);
  f = fopen(argv[2], "rb");
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (blen = ftell(f)) < 0) {
    fprintf(stderr, "floor: cannot read %s\n", argv[2]);
    return 2;
  }
  rewind(f);
  body = (char *)malloc((size_t)blen + 1);
  if (body == NULL || fread(body, 1, (size_t)blen, f) != (size_t)blen) return 2;
  fclose(f);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  hd = curl_slist_append(hd, "Content-Type: application/json");
  hd = curl_slist_append(hd, "Accept: application/json");
  hd = curl_slist_append(hd, "Expect:");
  hd = curl_slist_append(hd, "Authorization: Bearer bench-token-not-a-secret");
  if (conc > 1) {
    t0 = now();
    c0 = cpu();
    if (run_multi(argv[1], hd, body, blen, n, conc) != 0) return 1;
    t = now() - t0;
    c = cpu() - c0;
    printf("floor_multi %ld requests %.3f s %.0f req/s %.1f us/req\n", n, t,
           (double)n / t, c * 1e6 / (double)n);
    curl_slist_free_all(hd);
    curl_global_cleanup();
    free(body);
    return 0;
  }
  h = setup(argv[1], hd, body, blen, &s);
  t0 = now();
  c0 = cpu();
  for (i = 0; i < n; i++) {
    long status = 0;
    CURLcode rc;
    s.len = 0;
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 201) {
      fprintf(stderr, "floor: request %ld failed: %s (HTTP %ld)\n", i,
              curl_easy_strerror(rc), status);
      return 1;
    }
  }
  t = now() - t0;
  c = cpu() - c0;
  printf("floor %ld requests %.3f s %.0f req/s %.1f us/req\n", n, t, (double)n / t,
         c * 1e6 / (double)n);
  curl_slist_free_all(hd);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  free(body);
  free(s.data);
  return 0;
}
