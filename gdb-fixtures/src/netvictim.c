/* netvictim: a process whose open files an analyst wants listed: an
 * established loopback TCP connection (both ends, with bytes queued unread
 * in each direction), a TCP listener on IPv4 and one on IPv6, a connected
 * UDP socket, a named unix listener and a unix socket pair, a pipe, an
 * eventfd, a pty pair and a regular file read up to offset 5. It prints
 * "ready" and waits to be checkpointed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

char secret[64] = "NET_SECRET_9931";

static void die(const char *what) { perror(what); exit(1); }

int main(void) {
    int one = 1;
    /* 3: TCP listener 127.0.0.1:47011 */
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(47011) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(lst, (void *)&a, sizeof a) || listen(lst, 16)) die("listen");
    /* 4: client, connected to it; 5: the accepted end */
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cli, (void *)&a, sizeof a)) die("connect");
    int srv = accept(lst, 0, 0);
    if (srv < 0) die("accept");
    const char up[] = "GET /exfil?key=NET_SECRET_9931 HTTP/1.0\r\n\r\n";
    const char down[] = "HTTP/1.0 200 OK\r\n\r\n";
    write(cli, up, sizeof up - 1);     /* left unread in srv's receive queue */
    write(srv, down, sizeof down - 1); /* left unread in cli's receive queue */
    /* 6: TCP listener [::1]:47012 */
    int lst6 = socket(AF_INET6, SOCK_STREAM, 0);
    setsockopt(lst6, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(47012) };
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    if (bind(lst6, (void *)&a6, sizeof a6) || listen(lst6, 4)) die("listen6");
    /* 7: UDP 127.0.0.1:47013 connected to 127.0.0.1:53 */
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in u = { .sin_family = AF_INET, .sin_port = htons(47013) };
    inet_pton(AF_INET, "127.0.0.1", &u.sin_addr);
    struct sockaddr_in dns = { .sin_family = AF_INET, .sin_port = htons(53) };
    inet_pton(AF_INET, "127.0.0.1", &dns.sin_addr);
    if (bind(udp, (void *)&u, sizeof u) || connect(udp, (void *)&dns, sizeof dns)) die("udp");
    /* 8: unix listener /tmp/netvictim.sock; 9, 10: a unix socket pair */
    int ul = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    strcpy(un.sun_path, "/tmp/netvictim.sock");
    unlink(un.sun_path);
    if (bind(ul, (void *)&un, sizeof un) || listen(ul, 2)) die("unix");
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) die("socketpair");
    /* 11, 12: a pipe; 13: an eventfd; 14, 15: a pty pair; 16: a file at offset 5 */
    int pfd[2];
    if (pipe(pfd)) die("pipe");
    int efd = eventfd(42, 0);
    int ptm = posix_openpt(O_RDWR | O_NOCTTY);
    if (ptm < 0 || grantpt(ptm) || unlockpt(ptm)) die("pty");
    int pts = open(ptsname(ptm), O_RDWR | O_NOCTTY);
    int f = open("/tmp/netvictim.txt", O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(f, "hello world\n", 12);
    lseek(f, 5, SEEK_SET);
    fprintf(stderr, "ready %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", lst, cli, srv, lst6, udp,
            ul, sp[0], sp[1], pfd[0], pfd[1], efd, ptm, pts, f);
    for (;;) pause();
}
