/* protocol.c: the messages between the coordinator and the groups' rank 0 (types in
 * orch_internal.h), as one byte buffer each: a fixed header, then the text.
 *
 * The protocol is a strict request/reply from the group's side: a group sends HELLO, PROGRESS
 * or RESULT and blocks for exactly one reply (TRIAL, CONTINUE, HALT or EXIT), so no message is
 * ever unmatched and the coordinator needs no per-group queues. The header is copied as a C
 * struct: every rank runs the same safecl binary on one kind of machine; the magic and version
 * catch a mismatched binary. Inside a group of G ranks the reply is broadcast from group rank 0
 * with orch_msg_bcast, so groups of any size follow the same loop. */
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

typedef struct wire {
  uint32_t magic, version;
  int32_t type, group;
  int64_t trial;
  int32_t attempt, sessions, status, flags, skipped, exit_code;
  double seconds, final_acc, avg_acc, val_acc, latency;
  char id[40];
  uint64_t text_len;
} wire;

const char *orch_msg_name(int type) {
  static const char *const names[ORCH_MSG_COUNT] = {"NONE",
#define ORCH_MSG_STR(name) #name,
                                                    ORCH_MSG_LIST(ORCH_MSG_STR)
#undef ORCH_MSG_STR
  };
  return type > 0 && type < ORCH_MSG_COUNT ? names[type] : "?";
}

void orch_msg_clear(orch_msg *m) {
  free(m->text);
  memset(m, 0, sizeof *m);
}

scl_err orch_msg_set_text(orch_msg *m, const char *text) {
  free(m->text);
  m->text = text ? strdup(text) : NULL;
  if (text && !m->text) return SCL_ERROR(SCL_ERR_NOMEM, "message text");
  return SCL_OK;
}

static scl_err encode(const orch_msg *m, char **buf, size_t *len) {
  size_t text_len = m->text ? strlen(m->text) : 0;
  wire w = {ORCH_MSG_MAGIC, ORCH_MSG_VERSION, m->type,    m->group,   m->trial,     m->attempt,
            m->sessions,    m->status,        m->flags,   m->skipped, m->exit_code, m->seconds,
            m->final_acc,   m->avg_acc,       m->val_acc, m->latency, {0},          text_len};
  memcpy(w.id, m->id, sizeof m->id);
  *len = sizeof w + text_len;
  SCL_CALL(scl_alloc(*len, "message", (void **)buf));
  memcpy(*buf, &w, sizeof w);
  if (text_len) memcpy(*buf + sizeof w, m->text, text_len);
  return SCL_OK;
}

static scl_err decode(const char *buf, size_t len, orch_msg *m) {
  wire w;
  memset(m, 0, sizeof *m);
  SCL_CHECK(len >= sizeof w, SCL_ERR_FORMAT, "orchestrator message of %zu bytes", len);
  memcpy(&w, buf, sizeof w);
  SCL_CHECK(w.magic == ORCH_MSG_MAGIC && w.version == ORCH_MSG_VERSION &&
                w.text_len == len - sizeof w && w.type > 0 && w.type < ORCH_MSG_COUNT,
            SCL_ERR_FORMAT,
            "malformed orchestrator message (magic %x version %u type "
            "%d): do all ranks run the same safecl?",
            w.magic, w.version, w.type);
  *m = (orch_msg){w.type,    w.group,   w.trial,     w.attempt, w.sessions,  w.status,
                  w.flags,   w.skipped, w.exit_code, w.seconds, w.final_acc, w.avg_acc,
                  w.val_acc, w.latency, {0},         NULL};
  memcpy(m->id, w.id, sizeof m->id);
  m->id[32] = '\0';
  if (w.text_len) {
    m->text = malloc(w.text_len + 1);
    SCL_CHECK(m->text, SCL_ERR_NOMEM, "message text");
    memcpy(m->text, buf + sizeof w, w.text_len);
    m->text[w.text_len] = '\0';
  }
  return SCL_OK;
}

scl_err orch_msg_send(const dist_comm *c, int dest, const orch_msg *m) {
  char *buf = NULL;
  size_t len = 0;
  SCL_CALL(encode(m, &buf, &len));
  scl_err err = dist_send(c, dest, ORCH_TAG, buf, len);
  scl_free(buf);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err orch_msg_recv(const dist_comm *c, int source, orch_msg *m, int *from) {
  dist_msg raw;
  SCL_CALL(dist_recv(c, source, ORCH_TAG, &raw));
  scl_err err = decode(raw.data, raw.len, m);
  if (from) *from = raw.source;
  dist_msg_free(&raw);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err orch_msg_bcast(const dist_comm *c, int root, orch_msg *m) {
  if (dist_comm_size(c) == 1) return SCL_OK;
  char *buf = NULL;
  size_t len = 0;
  if (dist_comm_rank(c) == root) SCL_CALL(encode(m, &buf, &len));
  scl_err err = dist_bcast_alloc(c, root, (void **)&buf, &len);
  if (!err && dist_comm_rank(c) != root) {
    orch_msg_clear(m);
    err = decode(buf, len, m);
  }
  scl_free(buf);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
