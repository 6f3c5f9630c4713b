# What the bench scripts share (sourced): ports, and waiting for a process to be ready.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something listens there (10 s at most).
wait_port() { for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# wait_troupe PORT LOG: until troupe answers /health and its log says the sandbox is ready.
wait_troupe() {
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && break; sleep 0.1; done
  for _ in $(seq 1 600); do grep -q "code sandbox ready" "$2" && break; sleep 0.1; done
}
