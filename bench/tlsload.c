/* tlsload: closed-loop load over TLS, as SIP2 lines or as OCLC Wise's HTTPS JSON tunnel.
 *
 *   tlsload -h HOST -p PORT -c CONNS -d SECONDS -f REQUESTS -m sip|wise [-l LOGIN] [-x CODES] [--json]
 *
 * The same client for both doors of a comparison: one thread per connection, blocking
 * OpenSSL, TCP_NODELAY, the server's certificate not verified (loopback benchmark).
 * Every connection connects, handshakes and logs in (LOGIN, untimed), all start the timed
 * run together, and each sends one request, waits for its reply, records the latency and
 * sends the next.
 *
 *   -m sip    requests are SIP2 lines ended by CR; a reply is a line ended by CR or LF.
 *   -m wise   each request is POST /sip2https/services {"sip2request": LINE, "token": T}
 *             on one keep-alive HTTP/1.1 connection; the login's reply gives T; the
 *             reply is the "sip2response" of a 200 answer (any other status is wrong).
 *   -f REQUESTS  request lines, cycled; connection i starts at line i.
 *   -x CODES     comma-separated reply prefixes that count as right; others count as wrong.
 *   --json       one JSON object (the figures loadgen prints) instead of text lines.
 *
 * Output (text): connections=N failed=N closed_by_server=N idle=0 logged_in=N login_refused=N
 * setup_s=S, then replies=N wrong=N errors=N seconds=S rate=R/s p50_us=U p90_us=U p99_us=U
 * max_us=U ok=N.  Exit status 0, 1 when no connection logged in, 2 on bad usage.
 * Build: cc -O2 tlsload.c -o tlsload -lssl -lcrypto -lpthread (needs OpenSSL's headers:
 * Debian's libssl-dev).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PREFIXES 32
#define MAX_LINES 1024
#define RX_CAP 131072
#define EXAMPLE_LEN 160

static const char *host = "127.0.0.1", *port = NULL, *login = NULL, *mode = NULL;
static int conns = 1, json_out = 0, wise = 0;
static double seconds = 5.0;
static char *lines[MAX_LINES];
static size_t nlines = 0;
static char *prefixes[MAX_PREFIXES];
static size_t nprefixes = 0;
static SSL_CTX *ctx;
static pthread_barrier_t ready;
static volatile int64_t deadline_ns = 0;

typedef struct {
  int index, connected, logged_in, refused, closed, errored;
  SSL *ssl;
  int fd;
  char token[256];
  char rx[RX_CAP];
  size_t rxlen;
  int64_t *lat;
  size_t nlat, cap;
  uint64_t wrong, ok;
  char example[EXAMPLE_LEN];
} worker_t;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void) {
  fprintf(stderr, "usage: tlsload -h HOST -p PORT -c CONNS -d SECONDS -f REQUESTS -m sip|wise "
                  "[-l LOGIN] [-x CODES] [--json]\n");
  exit(2);
}

static void read_requests(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "tlsload: cannot read %s: %s\n", path, strerror(errno));
    exit(2);
  }
  char buf[8192];
  while (fgets(buf, sizeof buf, f) && nlines < MAX_LINES) {
    size_t n = strcspn(buf, "\r\n");
    buf[n] = 0;
    if (n == 0 || buf[0] == '#') continue;
    lines[nlines++] = strdup(buf);
  }
  fclose(f);
  if (!nlines) {
    fprintf(stderr, "tlsload: %s has no request lines\n", path);
    exit(2);
  }
}

/* ---- I/O -------------------------------------------------------------------------- */

static int send_all(worker_t *w, const char *data, size_t n) {
  while (n) {
    int k = SSL_write(w->ssl, data, (int)n);
    if (k <= 0) return -1;
    data += k;
    n -= (size_t)k;
  }
  return 0;
}

static int fill(worker_t *w) {
  if (w->rxlen >= RX_CAP - 1) return -1;
  int k = SSL_read(w->ssl, w->rx + w->rxlen, (int)(RX_CAP - 1 - w->rxlen));
  if (k <= 0) {
    if (SSL_get_error(w->ssl, k) == SSL_ERROR_ZERO_RETURN || k == 0) w->closed = 1;
    return -1;
  }
  w->rxlen += (size_t)k;
  w->rx[w->rxlen] = 0;
  return 0;
}

static void consume(worker_t *w, size_t n) {
  memmove(w->rx, w->rx + n, w->rxlen - n);
  w->rxlen -= n;
  w->rx[w->rxlen] = 0;
}

/* One SIP2 reply line into out (NUL-terminated); -1 on a closed or broken connection. */
static int read_line(worker_t *w, char *out, size_t cap) {
  for (;;) {
    char *end = memchr(w->rx, '\r', w->rxlen);
    char *lf = memchr(w->rx, '\n', w->rxlen);
    if (!end || (lf && lf < end)) end = lf;
    if (end) {
      size_t n = (size_t)(end - w->rx);
      size_t m = n < cap - 1 ? n : cap - 1;
      memcpy(out, w->rx, m);
      out[m] = 0;
      size_t skip = n + 1;
      if (skip < w->rxlen && *end == '\r' && w->rx[skip] == '\n') skip++;
      consume(w, skip);
      return 0;
    }
    if (fill(w)) return -1;
  }
}

/* The JSON string value of "key" in body, unescaped (\" \\ \/ \n \r \t; \u escapes kept as '?'). */
static int json_string(const char *body, const char *key, char *out, size_t cap) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *p = strstr(body, pattern);
  if (!p) return -1;
  p += strlen(pattern);
  while (*p == ' ' || *p == ':') p++;
  if (*p++ != '"') return -1;
  size_t n = 0;
  while (*p && *p != '"' && n + 1 < cap) {
    if (*p == '\\' && p[1]) {
      p++;
      char c = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : *p == 'u' ? '?' : *p;
      if (*p == 'u') p += 4;
      out[n++] = c;
      p++;
    } else {
      out[n++] = *p++;
    }
  }
  out[n] = 0;
  return *p == '"' ? 0 : -1;
}

/* One HTTP answer: its status and the body's "sip2response" into out. */
static int read_answer(worker_t *w, int *status, char *out, size_t cap) {
  char *head_end;
  while (!(head_end = strstr(w->rx, "\r\n\r\n")))
    if (fill(w)) return -1;
  size_t head = (size_t)(head_end - w->rx) + 4;
  *status = atoi(w->rx + 9);
  long length = -1;
  for (char *line = strstr(w->rx, "\r\n"); line && line < head_end; line = strstr(line + 2, "\r\n"))
    if (!strncasecmp(line + 2, "content-length:", 15)) length = strtol(line + 17, NULL, 10);
  if (length < 0 || head + (size_t)length >= RX_CAP) return -1;
  while (w->rxlen < head + (size_t)length)
    if (fill(w)) return -1;
  char saved = w->rx[head + length];
  w->rx[head + length] = 0;
  if (json_string(w->rx + head, "sip2response", out, cap)) snprintf(out, cap, "%.*s", (int)length, w->rx + head);
  if (*status == 200 && !w->token[0]) json_string(w->rx + head, "token", w->token, sizeof w->token);
  w->rx[head + length] = saved;
  consume(w, head + (size_t)length);
  return 0;
}

/* Send one request and read its reply text; -1 when the connection failed. */
static int exchange(worker_t *w, const char *line, char *reply, size_t cap, int *status) {
  *status = 200;
  if (!wise) {
    char buf[8200];
    int n = snprintf(buf, sizeof buf, "%s\r", line);
    if (send_all(w, buf, (size_t)n)) return -1;
    return read_line(w, reply, cap);
  }
  char body[8300], req[8700];
  size_t b = 0;
  b += (size_t)snprintf(body, sizeof body, "{\"sip2request\": \"");
  for (const char *p = line; *p && b < sizeof body - 300; p++) {
    if (*p == '"' || *p == '\\') body[b++] = '\\';
    body[b++] = *p;
  }
  b += (size_t)snprintf(body + b, sizeof body - b, "\", \"token\": \"%s\"}", w->token);
  int n = snprintf(req, sizeof req,
                   "POST /sip2https/services HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n%s", host, b, body);
  if (send_all(w, req, (size_t)n)) return -1;
  return read_answer(w, status, reply, cap);
}

static int right(const char *reply) {
  if (!nprefixes) return 1;
  for (size_t i = 0; i < nprefixes; i++)
    if (!strncmp(reply, prefixes[i], strlen(prefixes[i]))) return 1;
  return 0;
}

/* ---- one connection ----------------------------------------------------------------- */

static int open_connection(worker_t *w) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
  if (getaddrinfo(host, port, &hints, &res)) return -1;
  w->fd = socket(res->ai_family, SOCK_STREAM, 0);
  int ok = w->fd >= 0 && connect(w->fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  if (!ok) return -1;
  int one = 1;
  setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  w->ssl = SSL_new(ctx);
  SSL_set_fd(w->ssl, w->fd);
  if (SSL_connect(w->ssl) != 1) return -1;
  w->connected = 1;
  return 0;
}

static void *run(void *arg) {
  worker_t *w = arg;
  char reply[8192];
  int status;
  if (open_connection(w) == 0) {
    if (login) {
      if (exchange(w, login, reply, sizeof reply, &status) == 0) {
        if (!strncmp(reply, "940", 3) || status != 200) w->refused = 1;
        else w->logged_in = 1;
      }
    } else {
      w->logged_in = 1;
    }
  }
  pthread_barrier_wait(&ready);
  if (!w->logged_in) return NULL;
  while (!deadline_ns) usleep(100);
  size_t next = (size_t)w->index % nlines;
  for (;;) {
    int64_t start = now_ns();
    if (start >= deadline_ns) break;
    if (exchange(w, lines[next], reply, sizeof reply, &status)) {
      if (!w->closed) w->errored = 1;
      break;
    }
    int64_t took = now_ns() - start;
    if (w->nlat == w->cap) {
      w->cap = w->cap ? w->cap * 2 : 65536;
      w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
      if (!w->lat) exit(3);
    }
    w->lat[w->nlat++] = took;
    if (status == 200 && right(reply)) {
      w->ok++;
    } else {
      if (!w->wrong) snprintf(w->example, sizeof w->example, "connection %d: HTTP %d %.120s", w->index, status, reply);
      w->wrong++;
    }
    next = (next + 1) % nlines;
  }
  return NULL;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  static struct option longopts[] = {{"json", no_argument, 0, 'J'}, {0, 0, 0, 0}};
  const char *file = NULL;
  int opt;
  while ((opt = getopt_long(argc, argv, "h:p:c:d:f:l:x:m:", longopts, NULL)) != -1) {
    switch (opt) {
      case 'h': host = optarg; break;
      case 'p': port = optarg; break;
      case 'c': conns = atoi(optarg); break;
      case 'd': seconds = atof(optarg); break;
      case 'f': file = optarg; break;
      case 'l': login = optarg; break;
      case 'm': mode = optarg; break;
      case 'x': {
        char *list = strdup(optarg);
        for (char *t = strtok(list, ","); t && nprefixes < MAX_PREFIXES; t = strtok(NULL, ","))
          prefixes[nprefixes++] = t;
        break;
      }
      case 'J': json_out = 1; break;
      default: usage();
    }
  }
  if (!port || !file || !mode || conns < 1 || seconds <= 0) usage();
  if (strcmp(mode, "sip") && strcmp(mode, "wise")) usage();
  wise = !strcmp(mode, "wise");
  read_requests(file);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  pthread_barrier_init(&ready, NULL, (unsigned)conns + 1);
  worker_t *ws = calloc((size_t)conns, sizeof *ws);
  pthread_t *ts = calloc((size_t)conns, sizeof *ts);
  int64_t setup_start = now_ns();
  for (int i = 0; i < conns; i++) {
    ws[i].index = i;
    ws[i].fd = -1;
    pthread_create(&ts[i], NULL, run, &ws[i]);
  }
  pthread_barrier_wait(&ready);
  int64_t start = now_ns();
  double setup_s = (double)(start - setup_start) / 1e9;
  deadline_ns = start + (int64_t)(seconds * 1e9);
  for (int i = 0; i < conns; i++) pthread_join(ts[i], NULL);
  double elapsed = (double)(now_ns() - start) / 1e9;

  size_t total = 0;
  uint64_t wrong = 0, ok = 0;
  int connected = 0, logged_in = 0, refused = 0, closed = 0, errors = 0;
  const char *example = NULL;
  for (int i = 0; i < conns; i++) {
    total += ws[i].nlat;
    wrong += ws[i].wrong;
    ok += ws[i].ok;
    connected += ws[i].connected;
    logged_in += ws[i].logged_in;
    refused += ws[i].refused;
    closed += ws[i].closed;
    errors += ws[i].errored;
    if (!example && ws[i].wrong) example = ws[i].example;
  }
  int64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < conns; i++) {
    memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
    k += ws[i].nlat;
  }
  qsort(all, total, sizeof *all, cmp64);
#define PCT(p) (total ? (double)all[(size_t)((double)(total - 1) * (p))] / 1000.0 : 0.0)
  double rate = elapsed > 0 ? (double)total / elapsed : 0.0;
  if (example) fprintf(stderr, "tlsload: wrong reply: %s\n", example);
  if (json_out) {
    printf("{\"connections\": %d, \"failed\": %d, \"closed_by_server\": %d, \"idle\": 0, \"logged_in\": %d, "
           "\"login_refused\": %d, \"unready\": 0, \"setup_s\": %.3f, \"replies\": %zu, \"wrong\": %llu, "
           "\"errors\": %d, \"seconds\": %.3f, \"rate\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"max_us\": %.1f, \"ok\": %llu, \"wrong_examples\": [",
           connected, conns - connected, closed, logged_in, refused, setup_s, total, (unsigned long long)wrong,
           errors, elapsed, rate, PCT(0.5), PCT(0.9), PCT(0.99), total ? (double)all[total - 1] / 1000.0 : 0.0,
           (unsigned long long)ok);
    if (example) {
      putchar('"');
      for (const char *p = example; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar((unsigned char)*p < 32 ? '?' : *p);
      }
      putchar('"');
    }
    printf("]}\n");
  } else {
    printf("connections=%d failed=%d closed_by_server=%d idle=0 logged_in=%d login_refused=%d unready=0 "
           "setup_s=%.3f\n", connected, conns - connected, closed, logged_in, refused, setup_s);
    printf("replies=%zu wrong=%llu errors=%d seconds=%.3f rate=%.1f/s p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f ok=%llu\n", total, (unsigned long long)wrong, errors, elapsed, rate, PCT(0.5), PCT(0.9),
           PCT(0.99), total ? (double)all[total - 1] / 1000.0 : 0.0, (unsigned long long)ok);
  }
  return logged_in ? 0 : 1;
}
