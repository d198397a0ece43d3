"""Where results leave the daemon: dead letters now; alerts and triggers later."""
