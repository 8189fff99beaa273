# An sshd in the dst test host, for migrations over ssh
# (phaul migrate --to ssh://HOST, which runs `phaul serve --stdio` there).
# Load after lib/hosts and lib/phaul:
#
#   load lib/hosts
#   load lib/phaul
#   load lib/ssh
#   setup()    { hosts_setup; phaul_setup; ssh_setup; }
#   teardown() { hosts_teardown; }     # sshd goes with the dst host
#
# ssh_setup generates, in $SCRATCH/ssh, a host key, a client key that
# root's authorized_keys (of this sshd alone) holds, a known_hosts with
# the host key, an sshd_config (root login by key only, no PAM, no
# passwords) and an ssh_config for the client; then starts Debian's
# /usr/sbin/sshd in dst on $DST_ADDR:22 and waits until it listens.
#
# SSH_CIPHERS=LIST before ssh_setup: the client's Ciphers (scripts/bench).
#
# Variables after ssh_setup:
#   SSH_DIR     $SCRATCH/ssh
#   SSH_CMD     "ssh -F $SSH_DIR/ssh_config": the client with that config
#   SSH_TO      ssh://root@$DST_ADDR
#   SSHD_LOG    sshd's log (-e)
#   SSHD_PID    the listening sshd, as dst sees it
# Functions:
#   ssh_remote [VAR=VAL...]   the --ssh-remote command: this build's phaul
#                             serve --stdio with the test's work and log
#                             dirs, its --policy file if there is one
#                             (lib/phaul's policy_allow), -v, its stderr
#                             appended to $SERVE_LOG
#   migrate_ssh [VAR=VAL...] [--] ARGS...
#                             migrate (lib/phaul) --to $SSH_TO with
#                             --ssh-cmd "$SSH_CMD" --ssh-remote "$(ssh_remote)"

SSHD=${SSHD:-/usr/sbin/sshd}

ssh_setup() {
	SSH_DIR=$SCRATCH/ssh
	SSHD_LOG=$SSH_DIR/sshd.log
	SSH_CMD="ssh -F $SSH_DIR/ssh_config"
	SSH_TO="ssh://root@$DST_ADDR"
	if [ ! -x "$SSHD" ]; then
		echo "no $SSHD: install Debian's openssh-server (scripts/setup)" >&2
		return 1
	fi
	mkdir -p "$SSH_DIR"
	in_dst mkdir -p /run/sshd # sshd's privilege separation directory
	chmod 0700 "$SSH_DIR"
	ssh-keygen -q -t ed25519 -N '' -C phaul-test-host -f "$SSH_DIR/host_key" || return 1
	ssh-keygen -q -t ed25519 -N '' -C phaul-test-client -f "$SSH_DIR/id" || return 1
	cp "$SSH_DIR/id.pub" "$SSH_DIR/authorized_keys"
	echo "$DST_ADDR $(cut -d' ' -f1,2 "$SSH_DIR/host_key.pub")" >"$SSH_DIR/known_hosts"
	cat >"$SSH_DIR/sshd_config" <<-CONF
		ListenAddress $DST_ADDR:22
		HostKey $SSH_DIR/host_key
		PidFile none
		AuthorizedKeysFile $SSH_DIR/authorized_keys
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		X11Forwarding no
		AllowTcpForwarding no
		PrintMotd no
	CONF
	cat >"$SSH_DIR/ssh_config" <<-CONF
		Host *
		    User root
		    IdentityFile $SSH_DIR/id
		    IdentitiesOnly yes
		    UserKnownHostsFile $SSH_DIR/known_hosts
		    GlobalKnownHostsFile /dev/null
		    StrictHostKeyChecking yes
		    ConnectTimeout 10
		    LogLevel ERROR
	CONF
	[ -z "${SSH_CIPHERS:-}" ] || echo "    Ciphers $SSH_CIPHERS" >>"$SSH_DIR/ssh_config"
	SSHD_PID=$(start_in_dst -o "$SSHD_LOG" "$SSHD" -D -e -f "$SSH_DIR/sshd_config") || return 1
	if ! wait_for 10 _sshd_listening; then
		echo "sshd did not listen on $DST_ADDR:22 within 10 s; its log:" >&2
		cat "$SSHD_LOG" >&2
		return 1
	fi
}

_sshd_listening() {
	in_dst ss -Hltn "sport = :22" | grep -q "$DST_ADDR:22"
}

ssh_remote() {
	local envs=""
	while [[ "${1:-}" == *=* ]]; do
		envs+="$1 "
		shift
	done
	local policy=""
	[ ! -f "$SCRATCH/policy" ] || policy="--policy $SCRATCH/policy "
	echo "${envs}$PHAUL serve --stdio --workdir $WORKDIR --log-dir $DST_LOGDIR ${policy}-v 2>>$SERVE_LOG"
}

migrate_ssh() {
	local envs=()
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	migrate "${envs[@]}" -- --to "$SSH_TO" --ssh-cmd "$SSH_CMD" \
		--ssh-remote "${SSH_REMOTE:-$(ssh_remote)}" "$@"
}
