//! Ansible playbooks in, plans out (in progress).
