/* loadgen: load generator for line-oriented request/response servers (SIP2).
 *
 *   loadgen -h HOST -p PORT -c CONNS -d SECONDS -f REQUESTS [-l LOGIN] [-i IDLE]
 *           [-x CODES] [-r RATE] [-s] [-o OFFSET] [-w WINDOW] [-T SECONDS] [--json]
 *
 * Each active connection sends one request, waits for one reply line (ended by CR
 * or LF), records the latency and sends the next (closed loop).  With -r RATE the
 * offered load is RATE requests/s over all active connections: each connection sends
 * on a fixed schedule and latency counts from the scheduled slot, so a slow reply
 * also charges the requests it delayed.
 *
 *   -f REQUESTS  request lines (blank lines and lines starting with '#' skipped), cycled
 *                per connection; connection i starts at line i unless -s.  "{c}" in a
 *                line (and in LOGIN) becomes the connection number plus OFFSET, so each
 *                connection can use its own patron and item.
 *   -l LOGIN     sent first on every connection; its reply is not timed.  A reply
 *                starting "940" counts as login_refused.
 *   -i IDLE      extra connections that only connect (and log in), then stay open.
 *   -x CODES     comma-separated reply prefixes that count as right (98, or 10,12, or
 *                121,101); any other reply counts under wrong=.  Replies matching a
 *                prefix longer than the 2-character code also count under ok= and
 *                ok_<prefix>=.
 *   -s           every connection starts at the first request line.
 *   -o OFFSET    added to the connection number for {c} (default 0).
 *   -w WINDOW    connections connecting or logging in at once during set-up (default 64),
 *                so that thousands of idle connections never overflow the listen backlog.
 *   -T SECONDS   set-up time limit (default 120); the timed run starts after set-up.
 *   --json       print one JSON object instead of the two text lines.
 *
 * Set-up (connect, log in) completes before the timed run starts, so logging in
 * 10,000 idle connections is not charged to the active ones.  Output:
 *   connections=N failed=N closed_by_server=N idle=N logged_in=N login_refused=N unready=N setup_s=S
 *   replies=N wrong=N errors=N seconds=S rate=R/s p50_us=U p90_us=U p99_us=U max_us=U ok=N [ok_P=N...] [target=R/s]
 * Up to three wrong replies are echoed to stderr.  Exit status 0, 1 when no connection
 * could be made, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { S_CONNECTING, S_LOGIN, S_READY, S_SENT, S_SLOT, S_IDLE, S_DEAD };

#define ACTIVE_RX 65536 /* a 64 with long item lists still fits */
#define IDLE_RX 1024    /* idle connections only ever read a login reply */
#define MAX_PREFIXES 32
#define MAX_EXAMPLES 3
#define EXAMPLE_LEN 160

typedef struct {
  char *p;
  uint32_t n; /* including the trailing CR */
} msg_t;

typedef struct {
  int fd;
  uint8_t state, active, overlong;
  uint32_t index;
  size_t next;         /* next request line */
  const msg_t *reqs;   /* this connection's request lines */
  const msg_t *login;  /* this connection's login line, or NULL */
  const char *out;     /* unsent tail of the current request after a partial write */
  uint32_t outlen;
  int64_t sent, due;   /* ns: when the current request was sent (or scheduled); next slot */
  char *rx;
  uint32_t rxlen, rxcap;
} conn_t;

/* configuration */
static char *host = "127.0.0.1", *port = "6001", *file, *login_tmpl, *codes;
static int conns = 1, idle, same_start, window = 64, json;
static long offset;
static double dur = 5, rate, setup_limit = 120;

/* request lines as read (templates) */
static char **tmpl;
static size_t ntmpl;
static int templated, login_templated;

/* -x prefixes */
static char *prefix[MAX_PREFIXES];
static size_t prefix_len[MAX_PREFIXES];
static long prefix_ok[MAX_PREFIXES];
static int nprefix;

/* results */
static int64_t *lat;
static size_t nlat, caplat;
static long replies, wrong, ok, errors, unsolicited, login_refused;
static int connected, failed, closed_by_server, logged_in, pending;
static char examples[MAX_EXAMPLES][EXAMPLE_LEN];
static int nexamples;

static int64_t interval;  /* with -r: ns between one connection's requests */
static int64_t end_ns;
static int measuring, ep;
static conn_t *cs;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) { fprintf(stderr, "loadgen: out of memory\n"); exit(1); }
  return p;
}

static void usage(void) {
  fprintf(stderr, "usage: loadgen -h HOST -p PORT -c CONNS -d SECONDS -f REQUESTS [-l LOGIN] [-i IDLE]\n"
                  "               [-x CODES] [-r RATE] [-s] [-o OFFSET] [-w WINDOW] [-T SECONDS] [--json]\n");
}

static int bad(const char *what, const char *value) {
  fprintf(stderr, "loadgen: bad %s %s\n", what, value);
  usage();
  return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *e;
  errno = 0;
  long v = strtol(s, &e, 10);
  if (errno || e == s || *e || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double lo, double *out) {
  char *e;
  errno = 0;
  double v = strtod(s, &e);
  if (errno || e == s || *e || !(v >= lo) || v > 1e9) return -1;
  *out = v;
  return 0;
}

/* The line with every "{c}" replaced by n, plus the CR terminator. */
static msg_t expand(const char *t, long n) {
  char num[24];
  int numlen = snprintf(num, sizeof num, "%ld", n);
  size_t len = strlen(t), count = 0;
  for (const char *s = t; (s = strstr(s, "{c}")); s += 3) count++;
  msg_t m;
  m.p = xmalloc(len + count * (size_t)numlen + 2);
  char *o = m.p;
  for (const char *s = t; *s;) {
    if (s[0] == '{' && s[1] == 'c' && s[2] == '}') { memcpy(o, num, (size_t)numlen); o += numlen; s += 3; }
    else *o++ = *s++;
  }
  *o++ = '\r';
  m.n = (uint32_t)(o - m.p);
  return m;
}

static int load_requests(void) {
  FILE *f = fopen(file, "r");
  if (!f) { fprintf(stderr, "loadgen: cannot read %s: %s\n", file, strerror(errno)); return -1; }
  size_t cap = 16;
  tmpl = xmalloc(cap * sizeof *tmpl);
  char *line = NULL;
  size_t linecap = 0;
  while (getline(&line, &linecap, f) >= 0) {
    line[strcspn(line, "\r\n")] = 0;
    if (!*line || *line == '#') continue;
    if (ntmpl == cap) {
      tmpl = realloc(tmpl, (cap *= 2) * sizeof *tmpl);
      if (!tmpl) { fprintf(stderr, "loadgen: out of memory\n"); exit(1); }
    }
    if (strstr(line, "{c}")) templated = 1;
    tmpl[ntmpl++] = strdup(line);
  }
  free(line);
  fclose(f);
  if (!ntmpl) { fprintf(stderr, "loadgen: no requests in %s\n", file); return -1; }
  return 0;
}

static int parse_codes(void) {
  char *copy = strdup(codes), *save = NULL;
  for (char *tok = strtok_r(copy, ", ;", &save); tok; tok = strtok_r(NULL, ", ;", &save)) {
    if (nprefix == MAX_PREFIXES) { fprintf(stderr, "loadgen: at most %d codes in -x\n", MAX_PREFIXES); return -1; }
    for (const char *ch = tok; *ch; ch++)
      if (*ch < 0x21 || *ch > 0x7e || *ch == '"' || *ch == '\\') {
        fprintf(stderr, "loadgen: -x codes must be printable ASCII without quotes: %s\n", tok);
        return -1;
      }
    prefix[nprefix] = tok;
    prefix_len[nprefix++] = strlen(tok);
  }
  if (!nprefix) { fprintf(stderr, "loadgen: -x needs at least one code\n"); return -1; }
  return 0;
}

static void note_example(const conn_t *c, const char *line, size_t len) {
  if (nexamples == MAX_EXAMPLES) return;
  char *o = examples[nexamples++];
  int n = snprintf(o, EXAMPLE_LEN, "connection %u: ", c->index);
  for (size_t i = 0; i < len && n < EXAMPLE_LEN - 4; i++) {
    unsigned char ch = (unsigned char)line[i];
    o[n++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '?';
  }
  if (c->overlong) memcpy(o + n, "...", 4); else o[n] = 0;
}

static void classify(conn_t *c, const char *line, size_t len) {
  if (!nprefix) return;
  int right = 0, counted_ok = 0;
  for (int i = 0; i < nprefix; i++) {
    if (len >= prefix_len[i] && !memcmp(line, prefix[i], prefix_len[i])) {
      right = 1;
      if (prefix_len[i] > 2) { prefix_ok[i]++; if (!counted_ok) { ok++; counted_ok = 1; } }
    }
  }
  if (!right || c->overlong) { wrong++; note_example(c, line, len); }
}

static void kill_conn(conn_t *c, int by_server) {
  if (c->state == S_DEAD) return;
  if (c->state == S_CONNECTING || c->state == S_LOGIN) pending--;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->state = S_DEAD;
  if (by_server) closed_by_server++;
  errors++;
}

static void want_out(conn_t *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One send per request; a partial write keeps the tail for EPOLLOUT. */
static void send_msg(conn_t *c, const msg_t *m) {
  ssize_t w = send(c->fd, m->p, m->n, MSG_NOSIGNAL);
  if (w == (ssize_t)m->n) return;
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) { kill_conn(c, 1); return; }
    w = 0;
  }
  c->out = m->p + w;
  c->outlen = m->n - (uint32_t)w;
  want_out(c, 1);
}

static void flush_out(conn_t *c) {
  ssize_t w = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) kill_conn(c, 1);
    return;
  }
  c->out += w;
  c->outlen -= (uint32_t)w;
  if (!c->outlen) want_out(c, 0);
}

static void send_request(conn_t *c, int64_t sent) {
  const msg_t *m = &c->reqs[c->next++ % ntmpl];
  c->state = S_SENT;
  c->sent = sent;
  send_msg(c, m);
}

/* The next request: at once (closed loop) or at its slot (paced). */
static void next_request(conn_t *c, int64_t t) {
  if (!interval) {
    if (t < end_ns) send_request(c, t);
    else c->state = S_READY;
    return;
  }
  if (c->due >= end_ns) { c->state = S_READY; return; }
  if (t >= c->due) {
    int64_t slot = c->due;
    c->due += interval;
    send_request(c, slot);
  } else c->state = S_SLOT;
}

static void logged_on(conn_t *c) {
  c->state = c->active ? S_READY : S_IDLE;
  if (c->active && measuring) next_request(c, now_ns());
}

static void on_connected(conn_t *c) {
  connected++;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  if (c->login) {
    c->state = S_LOGIN;
    send_msg(c, c->login);
  } else {
    pending--;
    logged_on(c);
  }
}

static void open_conn(conn_t *c, const struct addrinfo *ai) {
  c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
    failed++;
    c->state = S_DEAD;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  c->state = S_CONNECTING;
  pending++;
  if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0) on_connected(c);
  else if (errno != EINPROGRESS) {
    if (failed == 0) fprintf(stderr, "loadgen: connect to %s:%s: %s\n", host, port, strerror(errno));
    pending--;
    close(c->fd);
    c->fd = -1;
    c->state = S_DEAD;
    failed++;
  }
}

static void on_line(conn_t *c, const char *line, size_t len, int64_t t) {
  switch (c->state) {
  case S_LOGIN:
    pending--;
    if (len >= 3 && !memcmp(line, "940", 3)) login_refused++;
    else logged_in++;
    logged_on(c);
    break;
  case S_SENT:
    if (nlat == caplat) {
      lat = realloc(lat, (caplat *= 2) * sizeof *lat);
      if (!lat) { fprintf(stderr, "loadgen: out of memory\n"); exit(1); }
    }
    lat[nlat++] = t - c->sent;
    replies++;
    classify(c, line, len);
    next_request(c, t);
    break;
  default:
    unsolicited++;
    errors++;
  }
  c->overlong = 0;
}

static void on_readable(conn_t *c) {
  ssize_t r = read(c->fd, c->rx + c->rxlen, c->rxcap - c->rxlen);
  if (r <= 0) {
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    kill_conn(c, 1);
    return;
  }
  int64_t t = now_ns();
  c->rxlen += (uint32_t)r;
  char *b = c->rx;
  size_t start = 0, i = c->rxlen - (size_t)r;
  /* resume the scan where the last read ended: earlier bytes held no terminator */
  for (; i < c->rxlen; i++) {
    if (b[i] != '\r' && b[i] != '\n') continue;
    if (i > start || c->overlong) {
      on_line(c, b + start, i - start, t);
      if (c->state == S_DEAD) return;
    }
    start = i + 1;
  }
  if (start < c->rxlen) {
    if (start) memmove(b, b + start, c->rxlen - start);
    c->rxlen -= (uint32_t)start;
    if (c->rxlen == c->rxcap) c->overlong = 1; /* keep the head for the code, drop the rest */
    if (c->overlong) c->rxlen = 16;
  } else c->rxlen = 0;
}

static void on_event(conn_t *c, uint32_t events) {
  if (c->state == S_DEAD) return;
  if (c->state == S_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      if (failed == 0) fprintf(stderr, "loadgen: connect to %s:%s: %s\n", host, port, strerror(err));
      pending--;
      close(c->fd);
      c->fd = -1;
      c->state = S_DEAD;
      failed++;
      return;
    }
    if (events & EPOLLOUT) on_connected(c);
    return;
  }
  if ((events & EPOLLOUT) && c->outlen) {
    flush_out(c);
    if (c->state == S_DEAD) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
}

static int wait_events(struct epoll_event *evs, int max, int64_t timeout) {
  if (timeout < 0) timeout = 0;
#ifdef SYS_epoll_pwait2
  static int have_pwait2 = 1;
  if (have_pwait2) {
    struct timespec ts = {(time_t)(timeout / 1000000000), (long)(timeout % 1000000000)};
    int n = (int)syscall(SYS_epoll_pwait2, ep, evs, max, &ts, NULL, (size_t)8);
    if (n >= 0) return n;
    if (errno == EINTR) return 0;
    if (errno != ENOSYS) return -1;
    have_pwait2 = 0;
  }
#endif
  int n = epoll_wait(ep, evs, max, (int)((timeout + 999999) / 1000000));
  return n < 0 && errno == EINTR ? 0 : n;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(double q) { return nlat ? (double)lat[(size_t)(q * (double)(nlat - 1))] / 1e3 : 0; }

static void raise_nofile(int need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl)) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need)
    fprintf(stderr, "loadgen: the open-file limit is %llu, below the %d connections asked for\n",
            (unsigned long long)rl.rlim_cur, need);
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {{"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'H'}, {0}};
  int o;
  long v;
  while ((o = getopt_long(argc, argv, "h:p:c:d:f:l:i:x:r:so:w:T:", longopts, NULL)) != -1) switch (o) {
    case 'h': host = optarg; break;
    case 'p': if (parse_long(optarg, 1, 65535, &v)) return bad("port", optarg); port = optarg; break;
    case 'c': if (parse_long(optarg, 1, 1000000, &v)) return bad("connection count", optarg); conns = (int)v; break;
    case 'd': if (parse_double(optarg, 0.001, &dur)) return bad("duration", optarg); break;
    case 'f': file = optarg; break;
    case 'l': login_tmpl = optarg; break;
    case 'i': if (parse_long(optarg, 0, 1000000, &v)) return bad("idle count", optarg); idle = (int)v; break;
    case 'x': codes = optarg; break;
    case 'r': if (parse_double(optarg, 0, &rate)) return bad("rate", optarg); break;
    case 's': same_start = 1; break;
    case 'o': if (parse_long(optarg, 0, 1000000000, &offset)) return bad("offset", optarg); break;
    case 'w': if (parse_long(optarg, 1, 100000, &v)) return bad("window", optarg); window = (int)v; break;
    case 'T': if (parse_double(optarg, 0.001, &setup_limit)) return bad("set-up time", optarg); break;
    case 'J': json = 1; break;
    case 'H': usage(); return 0;
    default: usage(); return 2;
  }
  if (optind < argc) return bad("argument", argv[optind]);
  if (!file) { fprintf(stderr, "loadgen: -f REQUESTS is required\n"); usage(); return 2; }
  if (load_requests()) return 2;
  if (codes && parse_codes()) return 2;
  login_templated = login_tmpl && strstr(login_tmpl, "{c}");

  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai) { fprintf(stderr, "loadgen: %s: %s\n", host, gai_strerror(gai)); return 2; }

  int total = conns + idle;
  raise_nofile(total + 16);
  if (rate > 0) {
    interval = (int64_t)((double)conns * 1e9 / rate);
    if (interval < 1) interval = 1;
  }

  /* Requests and login lines, expanded once so the hot path only calls send(). */
  msg_t *shared = NULL, shared_login = {0};
  if (!templated) {
    shared = xmalloc(ntmpl * sizeof *shared);
    for (size_t k = 0; k < ntmpl; k++) shared[k] = expand(tmpl[k], 0);
  }
  if (login_tmpl && !login_templated) shared_login = expand(login_tmpl, 0);
  cs = calloc((size_t)total, sizeof *cs);
  if (!cs) { fprintf(stderr, "loadgen: out of memory\n"); return 1; }
  for (int i = 0; i < total; i++) {
    conn_t *c = &cs[i];
    c->fd = -1;
    c->index = (uint32_t)i;
    c->active = i < conns;
    c->next = same_start ? 0 : (size_t)i;
    c->rxcap = c->active ? ACTIVE_RX : IDLE_RX;
    c->rx = xmalloc(c->rxcap);
    if (c->active) {
      if (templated) {
        msg_t *own = xmalloc(ntmpl * sizeof *own);
        for (size_t k = 0; k < ntmpl; k++) own[k] = expand(tmpl[k], offset + i);
        c->reqs = own;
      } else c->reqs = shared;
    }
    if (login_templated) {
      msg_t *own = xmalloc(sizeof *own);
      *own = expand(login_tmpl, offset + i);
      c->login = own;
    } else if (login_tmpl) c->login = &shared_login;
  }
  caplat = 1 << 20;
  lat = xmalloc(caplat * sizeof *lat);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) { perror("loadgen: epoll_create1"); return 1; }

  /* Set-up: connect (and log in) everything, at most WINDOW at a time. */
  struct epoll_event evs[1024];
  int64_t setup_start = now_ns(), setup_end = setup_start + (int64_t)(setup_limit * 1e9);
  int opened = 0;
  for (;;) {
    while (opened < total && pending < window) open_conn(&cs[opened++], ai);
    if (opened == total && pending == 0) break;
    int64_t t = now_ns();
    if (t >= setup_end) break;
    int n = wait_events(evs, 1024, setup_end - t < 100000000 ? setup_end - t : 100000000);
    if (n < 0) { perror("loadgen: epoll"); return 1; }
    for (int k = 0; k < n; k++) on_event(evs[k].data.ptr, evs[k].events);
  }
  freeaddrinfo(ai);
  int64_t start = now_ns();
  double setup_s = (double)(start - setup_start) / 1e9;
  int unready = pending;
  if (!connected) {
    fprintf(stderr, "loadgen: no connection to %s:%s could be made\n", host, port);
    return 1;
  }

  /* Timed run. */
  end_ns = start + (int64_t)(dur * 1e9);
  measuring = 1;
  for (int i = 0; i < conns; i++) {
    conn_t *c = &cs[i];
    if (interval) c->due = start + (int64_t)((double)interval * i / conns); /* spread the first slots */
    if (c->state == S_READY) next_request(c, start);
  }
  int64_t t;
  while ((t = now_ns()) < end_ns) {
    int64_t timeout = end_ns - t < 100000000 ? end_ns - t : 100000000;
    if (interval) {
      for (int i = 0; i < conns; i++) {
        conn_t *c = &cs[i];
        if (c->state != S_SLOT) continue;
        if (c->due <= t) next_request(c, t);
        if (c->state == S_SLOT && c->due - t < timeout) timeout = c->due - t;
      }
    }
    int n = wait_events(evs, 1024, timeout);
    if (n < 0) { perror("loadgen: epoll"); return 1; }
    for (int k = 0; k < n; k++) on_event(evs[k].data.ptr, evs[k].events);
  }
  double el = (double)(now_ns() - start) / 1e9;

  qsort(lat, nlat, sizeof *lat, cmp64);
  double mean = 0;
  for (size_t k = 0; k < nlat; k++) mean += (double)lat[k];
  mean = nlat ? mean / (double)nlat / 1e3 : 0;
  double maxus = nlat ? (double)lat[nlat - 1] / 1e3 : 0;
  for (int k = 0; k < nexamples; k++) fprintf(stderr, "loadgen: wrong reply on %s\n", examples[k]);

  if (json) {
    printf("{\"connections\": %d, \"failed\": %d, \"closed_by_server\": %d, \"idle\": %d, \"logged_in\": %d, "
           "\"login_refused\": %ld, \"unready\": %d, \"setup_s\": %.3f, ",
           connected, failed, closed_by_server, idle, logged_in, login_refused, unready, setup_s);
    printf("\"active\": %d, \"replies\": %ld, \"wrong\": %ld, \"errors\": %ld, \"unsolicited\": %ld, "
           "\"seconds\": %.3f, \"rate\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
           "\"p999_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.1f, \"ok\": %ld, \"ok_by_prefix\": {",
           conns, replies, wrong, errors, unsolicited, el, (double)replies / el, pct(0.5), pct(0.9), pct(0.99),
           pct(0.999), maxus, mean, ok);
    int first = 1;
    for (int k = 0; k < nprefix; k++) {
      if (prefix_len[k] <= 2) continue;
      printf("%s\"%s\": %ld", first ? "" : ", ", prefix[k], prefix_ok[k]);
      first = 0;
    }
    printf("}, \"target_rate\": %.1f, \"wrong_examples\": [", rate);
    for (int k = 0; k < nexamples; k++) printf("%s\"%s\"", k ? ", " : "", examples[k]);
    printf("]}\n");
  } else {
    printf("connections=%d failed=%d closed_by_server=%d idle=%d logged_in=%d login_refused=%ld unready=%d "
           "setup_s=%.2f\n", connected, failed, closed_by_server, idle, logged_in, login_refused, unready, setup_s);
    printf("replies=%ld wrong=%ld errors=%ld seconds=%.2f rate=%.0f/s p50_us=%.0f p90_us=%.0f p99_us=%.0f "
           "max_us=%.0f ok=%ld", replies, wrong, errors, el, (double)replies / el, pct(0.5), pct(0.9), pct(0.99),
           maxus, ok);
    for (int k = 0; k < nprefix; k++)
      if (prefix_len[k] > 2) printf(" ok_%s=%ld", prefix[k], prefix_ok[k]);
    if (rate > 0) printf(" target=%.0f/s", rate);
    printf("\n");
  }
  return 0;
}
