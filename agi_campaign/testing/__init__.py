"""Test and demo infrastructure, not the dialer: a real Asterisk 22 in a Debian chroot
(`sandbox`), a dialer wired to it (`harness`), the service as a child process (`process`), and
`agi-campaign demo` (`demo`). Nothing in the dialer imports this package."""
