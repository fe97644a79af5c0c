/* Minimal stand-in for the reference host-device plugin, used by scripts/bench.sh as
 * amd-host-device's delegate: reads and discards stdin, prints a valid CNI 0.3.1
 * result on ADD (and a version list on VERSION), nothing otherwise, exits 0. It moves
 * nothing: the NIC stays on the host.
 *
 * It stays a C program (built by bench.sh with cc -static) so that the stub rows
 * stay comparable with the earlier runs in docs/performance.md. Start-up cost is not
 * the reason: own cost subtracts the stub alone from amd-host-device -> stub, and on
 * the benchmark's VM this static glibc stub (~0.6 ms per run) actually starts slower
 * than the musl plugin (~0.2 ms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0)
        ;
    const char *cmd = getenv("CNI_COMMAND");
    if (cmd && strcmp(cmd, "ADD") == 0) {
        const char *ifname = getenv("CNI_IFNAME");
        const char *netns = getenv("CNI_NETNS");
        printf("{\"cniVersion\":\"0.3.1\",\"interfaces\":[{\"name\":\"%s\",\"mac\":\"02:00:00:00:00:01\","
               "\"sandbox\":\"%s\"}],\"ips\":[{\"version\":\"4\",\"interface\":0,"
               "\"address\":\"10.66.0.2/24\"}],\"dns\":{}}\n",
               ifname ? ifname : "", netns ? netns : "");
    } else if (cmd && strcmp(cmd, "VERSION") == 0) {
        printf("{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]}\n");
    }
    return 0;
}
