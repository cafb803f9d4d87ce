/*
** cfaccess request engine internals (slot.h): the slots and the engine as
** engine.c, pages.c (listing pages) and waits.c (what a ready slot waits
** for) share them. Not for any other file.
*/
#ifndef CFACCESS_SLOT_H
#define CFACCESS_SLOT_H

#include "engine.h"
#include "response.h"

#define MAX_PAGES 1000          /* hard cap when following pages */
#define REPORT_EVERY 1.0        /* seconds between on_progress wait reports */

enum { SL_FREE = 0, SL_READY, SL_RUNNING };
/* PH_MAIN: the operation's request; PH_PAGES: the pages of a list
** operation; PH_CHECK: the pages of the collection after an ambiguous
** create, to look for the policy it may have made. */
enum { PH_MAIN = 0, PH_PAGES, PH_CHECK };

/* Lua values a slot keeps alive, in the anchors table at k*ANCHORS + j:
** 1..4 what prep pushed; then these. */
#define ANCHORS 8
enum { AN_PAGE_URL = 5, AN_ACC, AN_SEEN, AN_ERR };

typedef struct cf_slot {
  int op;                   /* 1-based operation index; 0: free */
  int state;
  int phase;
  int attempt;              /* tries of the current request */
  int main_attempt;         /* PH_CHECK: tries of the create so far */
  int was_ambiguous;        /* a try of this create may have committed */
  int last;                 /* PH_CHECK: the create's failure was final */
  double ready_at;          /* monotonic: do not start before */
  double deadline_at;       /* monotonic: the call's deadline (0: none) */
  double first_sent;        /* create: when its first try started */
  double try_started;       /* the current try */
  long long since;          /* create: the server's clock (s) at first_sent,
                            ** a lower bound from Date (dedupe.c) */
  lua_Integer page, total;  /* list pages: the current one, items so far */
  cf_req rq;
  const char *path;         /* of the current request, for messages */
  cf_buf *resp;
  cf_buf own_resp;
  cf_buf body;
  cf_exchange x;
} cf_slot;

typedef struct cf_engine {
  cf_client *c;
  cf_exec_spec sp;          /* indices rebased to the protected call */
  int anchors;              /* stack index of the anchors table */
  int out;                  /* single: where the value goes */
  int ok;                   /* single: the outcome */
  int next, done, nslots;
  int pace_logged;          /* the current pacing wait was logged */
  int waiting;              /* the engine sleeps: a wait is reported */
  double next_report;       /* ... next on_progress report then */
  int pipewait;
  cf_slot slots[];
} cf_engine;

#define CI 1                /* the client's stack index in the engine */

/* Anchors: keep the value on top alive for slot k as anchor j (pops), or
** push it back. */
CF_INTERNAL void cf_anchor(lua_State *L, cf_engine *e, int k, int j);
CF_INTERNAL int cf_anchored(lua_State *L, cf_engine *e, int k, int j);
/* The operation of slot k is over: its value (or err) on top goes to the
** caller, the slot is freed, on_progress hears of it. */
CF_INTERNAL void cf_deliver(lua_State *L, cf_engine *e, int k, int ok);
/* The check after an ambiguous create cannot finish (the listing's err on
** top, popped): the op fails with the create's err, noted "may have been
** made" (kind "timeout" when deadline is set). */
CF_INTERNAL void cf_unchecked(lua_State *L, cf_engine *e, int k, const char *why, int deadline);

/* pages.c */
CF_INTERNAL void cf_begin_pages(lua_State *L, cf_engine *e, int k, int phase);
CF_INTERNAL int cf_page_done(lua_State *L, cf_engine *e, int k);
CF_INTERNAL int cf_is_object(lua_State *L, int idx);

/* waits.c */
CF_INTERNAL double cf_tenths(double s);
CF_INTERNAL const char *cf_push_secs(lua_State *L, double s);
CF_INTERNAL int cf_slot_ready(lua_State *L, cf_engine *e, int k, double now, double *at, int *why);
CF_INTERNAL void cf_report_wait(lua_State *L, cf_engine *e, double wait, const char *reason);

#endif
