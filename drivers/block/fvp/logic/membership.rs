// SPDX-License-Identifier: GPL-2.0

//! Heartbeats, fences, leases and takeover: the split-brain rule of
//! `docs/replication.md` section 4, as a pure state machine.
//!
//! [`Membership`] holds one host's view of the cluster. It never reads a clock: every
//! method that depends on time takes `now`, nanoseconds of the host's own monotonic clock
//! (`ktime_get`), and only differences of such values are used. It never allocates; its
//! arrays are sized for `N` hosts (default [`MAX_HOSTS`] = 64, host ids `1..=N`; the model
//! checker uses a smaller `N`). Bit `h - 1` of a `u64` host mask stands for host `h`, as
//! on the wire.
//!
//! The caller feeds it every valid message ([`Membership::on_message`], or
//! [`Membership::on_ping`] / [`Membership::on_pong`] for heartbeats, which carry the
//! sender's [`View`]), calls [`Membership::tick`] at least every heartbeat, puts
//! [`Membership::outgoing`] into its PINGs and PONGs, and asks the predicates before
//! acting.
//!
//! # Rules
//!
//! Let `T` be `timeout_ns`. A *majority* is a set of hosts holding more than half of the
//! hosts of every configuration in force: the configured hosts; the earlier
//! configurations kept since a change until every configured host has announced the new
//! one (joint majorities, at most [`JOINT_MAX`]); and the configurations announced by
//! views dated within `T` (so a host that restarted during a change, or a new host,
//! learns of it). With one configuration in force, and `n` hosts in it, that is a count
//! `c` with `2c > n`. Configurations are announced in every PING and PONG
//! ([`View::configured`], [`View::joint`]).
//!
//! - **Heard.** Host `h` is heard at `now` when a valid message from it arrived in
//!   `(now - T, now]`.
//! - **Fence.** [`tick`](Membership::tick) fences every configured host that is not heard.
//!   Fences are sticky. A new `Membership` starts with every other configured host fenced:
//!   a host that restarts has forgotten whom it fenced, and must not grant a lease to a
//!   host it may have fenced before the restart. The first lifts come `T` after
//!   heartbeats start arriving.
//! - **Rejoin.** `tick` lifts the fence of `h` when `h` has been heard *continuously* for
//!   at least `T` (no gap of `T` or more between its messages since `heard_since`), the
//!   local host does not announce `h` in its own `recovering`, and no view dated
//!   within `T` announces `h` in `recovering`.
//! - **Views.** A PONG from `c` echoing the local send time `s` of a PING carries `c`'s
//!   view, which `c` made after `s`: it is kept *dated* `s`, and counts while `now - s <
//!   T`, however long the PONG was held up in transit. A view dated within `T` is never
//!   more than `T` old (with clocks of the same rate), which is what lets the owner's
//!   settled lease (`T + T/5`) outlast every fence a host announced before it lifted
//!   that fence. A PING's view has no such date and is not kept.
//! - **Lease.** A PONG from `c` echoing the local send time `s` of a PING, with the local
//!   host not in its `fenced`, grants a lease until `s + T`; a PONG whose `fenced` holds
//!   the local host revokes `c`'s grant at once, and so does a PING with such a
//!   view. The local host
//!   [holds its lease](Membership::holds_lease) at `now` when it and the hosts whose
//!   grant is still valid are a majority.
//! - **Majority fence.** [`majority_fences`](Membership::majority_fences)`(x)` counts the
//!   local host if it fences `x`, and every other host but `x` whose latest view, dated
//!   within `T`, has `x` in `fenced`.
//! - **Takeover.** [`takeover_ready`](Membership::takeover_ready)`(x)` needs the lease, a
//!   majority fence of `x` now, and a majority fence of `x` observed without interruption
//!   (at every call of a mutating method) for at least `T + T/5`.
//! - **Fenced by a majority.** [`fenced_by_majority`](Membership::fenced_by_majority): the
//!   views dated within `T` that have the local host in `fenced` are a majority (the
//!   local host never fences itself, so with three hosts both others are needed).
//!
//! Views are kept per sender and replaced by each later-dated PONG from it. Everything is
//! valid only for configured hosts; messages "from" the local host, from an unconfigured
//! id or from an id outside `1..=N` are ignored.

/// Largest number of hosts (ids `1..=64`, one bit each in a `u64`).
pub const MAX_HOSTS: usize = 64;

/// The host sets a PING or PONG carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct View {
    /// Hosts the sender heard within the timeout.
    pub heard: u64,
    /// Hosts the sender fences.
    pub fenced: u64,
    /// Owners whose volumes the sender is recovering.
    pub recovering: u64,
    /// The sender's configured hosts (0: not announced).
    pub configured: u64,
    /// The sender's earlier configurations still in force (0: unused slot).
    pub joint: [u64; JOINT_MAX],
}

/// Earlier configurations a host keeps in force at once (joint majorities), and the
/// slots of [`View::joint`].
pub const JOINT_MAX: usize = 2;

/// Why a [`Membership`] could not be built or reconfigured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipError {
    /// `N` above [`MAX_HOSTS`].
    TooManyHosts,
    /// The local id is outside `1..=N`.
    BadLocalId,
    /// The configured mask does not contain the local host.
    LocalNotConfigured,
    /// The configured mask has bits for ids above `N`.
    BadConfigured,
    /// A timeout of zero.
    ZeroTimeout,
    /// A change removing a majority of the hosts of the configuration in force (or of
    /// an earlier one still in force): the removed hosts alone could hold a majority.
    RemovesMajority,
    /// [`JOINT_MAX`] earlier configurations are still in force: some host has not
    /// applied them yet.
    ChangeInProgress,
}

/// One host's membership state machine; see the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership<const N: usize = MAX_HOSTS> {
    local: u32,
    configured: u64,
    /// Earlier configurations still in force (0: unused slot).
    joint: [u64; JOINT_MAX],
    /// Hosts of `configured` whose view announced exactly `configured` since it was set.
    confirmed: u64,
    timeout: u64,
    fenced: u64,
    recovering: u64,
    /// Hosts with a valid `last_heard` and `heard_since`.
    heard_valid: u64,
    last_heard: [u64; N],
    heard_since: [u64; N],
    /// Hosts with a valid `view_at` and `views`.
    view_valid: u64,
    view_at: [u64; N],
    views: [View; N],
    /// Hosts with a valid `grant_until`.
    grant_valid: u64,
    grant_until: [u64; N],
    /// Targets with a valid `takeover_since`.
    since_valid: u64,
    takeover_since: [u64; N],
    /// Whether the lease was held at the last update, and since when.
    lease_valid: bool,
    lease_since: u64,
}

fn bit(id: u32) -> u64 {
    match id {
        1..=64 => 1u64 << (id - 1),
        _ => 0,
    }
}

/// Whether `count` hosts are a majority of `mask`'s.
fn mask_count_majority(count: u32, mask: u64) -> bool {
    count.saturating_mul(2) > mask.count_ones()
}

/// Whether the hosts of `set` (a subset of `mask`) are a majority of `mask`'s.
fn mask_majority(set: u64, mask: u64) -> bool {
    mask_count_majority((set & mask).count_ones(), mask)
}

/// Host ids of the bits of `mask`.
fn ids(mut mask: u64) -> impl Iterator<Item = u32> {
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let id = mask.trailing_zeros() + 1;
        mask &= mask - 1;
        Some(id)
    })
}

impl<const N: usize> Membership<N> {
    /// A host `local_id` in a cluster of the `configured` hosts (mask, the local host
    /// included) with host timeout `timeout_ns`. Every other configured host starts
    /// fenced.
    /// The checks of [`Membership::new`] and [`Membership::reset`].
    fn check_new(local_id: u32, configured: u64, timeout_ns: u64) -> Result<(), MembershipError> {
        if N > MAX_HOSTS {
            return Err(MembershipError::TooManyHosts);
        }
        if local_id == 0 || local_id as usize > N {
            return Err(MembershipError::BadLocalId);
        }
        if configured & bit(local_id) == 0 {
            return Err(MembershipError::LocalNotConfigured);
        }
        if configured & !Self::all_mask() != 0 {
            return Err(MembershipError::BadConfigured);
        }
        if timeout_ns == 0 {
            return Err(MembershipError::ZeroTimeout);
        }
        Ok(())
    }

    pub fn new(local_id: u32, configured: u64, timeout_ns: u64) -> Result<Self, MembershipError> {
        Self::check_new(local_id, configured, timeout_ns)?;
        Ok(Membership {
            local: local_id,
            configured,
            joint: [0; JOINT_MAX],
            confirmed: 0,
            timeout: timeout_ns,
            fenced: configured & !bit(local_id),
            recovering: 0,
            heard_valid: 0,
            last_heard: [0; N],
            heard_since: [0; N],
            view_valid: 0,
            view_at: [0; N],
            views: [View::default(); N],
            grant_valid: 0,
            grant_until: [0; N],
            since_valid: 0,
            takeover_since: [0; N],
            lease_valid: false,
            lease_since: 0,
        })
    }

    /// Makes this the state [`Membership::new`] returns, in place: the kernel keeps a
    /// membership in a box allocated zeroed, a value of several KiB being too large to
    /// pass through its stack. On error nothing changes.
    pub fn reset(&mut self, local_id: u32, configured: u64, timeout_ns: u64) -> Result<(), MembershipError> {
        Self::check_new(local_id, configured, timeout_ns)?;
        self.local = local_id;
        self.configured = configured;
        self.joint = [0; JOINT_MAX];
        self.confirmed = 0;
        self.timeout = timeout_ns;
        self.fenced = configured & !bit(local_id);
        self.recovering = 0;
        self.heard_valid = 0;
        self.last_heard.fill(0);
        self.heard_since.fill(0);
        self.view_valid = 0;
        self.view_at.fill(0);
        self.views.fill(View::default());
        self.grant_valid = 0;
        self.grant_until.fill(0);
        self.since_valid = 0;
        self.takeover_since.fill(0);
        self.lease_valid = false;
        self.lease_since = 0;
        Ok(())
    }

    fn all_mask() -> u64 {
        if N >= 64 {
            u64::MAX
        } else {
            (1u64 << N) - 1
        }
    }

    /// The local host id.
    pub fn local_id(&self) -> u32 {
        self.local
    }

    /// The configured hosts (mask, the local host included).
    pub fn configured(&self) -> u64 {
        self.configured
    }

    /// The host timeout in nanoseconds.
    pub fn timeout_ns(&self) -> u64 {
        self.timeout
    }

    /// How long a majority fence must stand before a takeover: `T + T/5`.
    pub fn takeover_wait_ns(&self) -> u64 {
        self.timeout.saturating_add(self.timeout / 5)
    }

    /// Whether [`set_configured`](Membership::set_configured)`(configured)` would be
    /// accepted, without changing anything.
    pub fn check_configured(&self, configured: u64) -> Result<(), MembershipError> {
        self.joint_after(configured).map(|_| ())
    }

    /// The earlier configurations in force after a change to `configured` (`None`: no
    /// change), or why it is refused.
    fn joint_after(&self, configured: u64) -> Result<Option<[u64; JOINT_MAX]>, MembershipError> {
        if configured & bit(self.local) == 0 {
            return Err(MembershipError::LocalNotConfigured);
        }
        if configured & !Self::all_mask() != 0 {
            return Err(MembershipError::BadConfigured);
        }
        if configured == self.configured {
            return Ok(None);
        }
        let in_force = core::iter::once(self.configured).chain(self.joint.iter().copied().filter(|&j| j != 0));
        for mask in in_force {
            if mask_majority(mask & !configured, mask) {
                return Err(MembershipError::RemovesMajority);
            }
        }
        // The configuration in force until now joins the earlier ones, less the new.
        let mut joint = self.joint;
        for j in joint.iter_mut() {
            if *j == configured {
                *j = 0;
            }
        }
        // A list of this host alone is nobody else's (cluster apply starts from it): no
        // other host decides by it, and announcing it would make every host that
        // hears of it need this one in each of its majorities.
        if self.configured != bit(self.local) && !joint.contains(&self.configured) {
            let slot = joint.iter_mut().find(|j| **j == 0).ok_or(MembershipError::ChangeInProgress)?;
            *slot = self.configured;
        }
        Ok(Some(joint))
    }

    /// Changes the host timeout (`fvpctl cluster set`); everything else is kept.
    pub fn set_timeout(&mut self, timeout_ns: u64) -> Result<(), MembershipError> {
        if timeout_ns == 0 {
            return Err(MembershipError::ZeroTimeout);
        }
        self.timeout = timeout_ns;
        Ok(())
    }

    /// Changes the configured hosts (`fvpctl host add/remove`, `cluster apply`). Hosts
    /// added start fenced and unheard; hosts removed are forgotten. The configuration
    /// in force until now stays in force too (joint majorities: every majority must be
    /// one of each) until every host of the new one has announced it; see
    /// `docs/replication.md` section 4. Refused if the removed hosts are a majority of
    /// a configuration in force, or if [`JOINT_MAX`] earlier ones still are.
    pub fn set_configured(&mut self, configured: u64) -> Result<(), MembershipError> {
        let Some(joint) = self.joint_after(configured)? else {
            return Ok(());
        };
        self.joint = joint;
        let added = configured & !self.configured;
        let keep = configured;
        self.configured = configured;
        self.confirmed = 0;
        self.fenced = (self.fenced & keep) | added;
        self.recovering &= keep;
        self.heard_valid &= keep & !added;
        self.view_valid &= keep & !added;
        self.grant_valid &= keep & !added;
        self.since_valid &= keep & !added;
        if self.others() == 0 {
            // Nobody else to wait for.
            self.joint = [0; JOINT_MAX];
        }
        Ok(())
    }

    /// Earlier configurations still in force (0: unused slot).
    pub fn joint(&self) -> [u64; JOINT_MAX] {
        self.joint
    }

    /// Hosts of the configuration that have not announced it yet while an earlier one
    /// is still in force (0 when none is).
    pub fn unconfirmed(&self) -> u64 {
        if self.joint.iter().all(|&j| j == 0) {
            0
        } else {
            self.others() & !self.confirmed
        }
    }

    /// Index of a remote configured host, `None` for anything else.
    fn remote(&self, id: u32) -> Option<usize> {
        let b = bit(id);
        if b == 0 || id == self.local || self.configured & b == 0 || id as usize > N {
            return None;
        }
        Some(id as usize - 1)
    }

    fn others(&self) -> u64 {
        self.configured & !bit(self.local)
    }

    /// The configurations whose majorities count at `now`: the local one, the earlier
    /// ones still in force, and those announced by views dated within the timeout (a
    /// host that restarted during a change learns of it from them).
    fn masks(&self, now: u64) -> impl Iterator<Item = u64> + '_ {
        let all = Self::all_mask();
        let own = core::iter::once(self.configured).chain(self.joint.iter().copied());
        let announced = self.fresh_views(now).flat_map(|v| core::iter::once(v.configured).chain(v.joint));
        own.chain(announced).map(move |m| m & all).filter(|&m| m != 0)
    }

    /// Whether `set` holds a majority of every configuration in force at `now`.
    fn quorum(&self, set: u64, now: u64) -> bool {
        self.masks(now).all(|m| mask_majority(set & m, m))
    }

    fn within(&self, then: u64, now: u64) -> bool {
        now.saturating_sub(then) < self.timeout
    }

    /// Records a valid message from `from` received at `now`. Returns false (and changes
    /// nothing) if `from` is not a configured remote host.
    pub fn on_message(&mut self, from: u32, now: u64) -> bool {
        let Some(i) = self.remote(from) else {
            return false;
        };
        self.refresh(now);
        let b = bit(from);
        let (Some(last), Some(since)) = (self.last_heard.get_mut(i), self.heard_since.get_mut(i)) else {
            return false;
        };
        let continuous = self.heard_valid & b != 0 && now.saturating_sub(*last) < self.timeout;
        if !continuous {
            *since = now;
        }
        if self.heard_valid & b == 0 || now > *last {
            *last = now;
        }
        self.heard_valid |= b;
        true
    }

    /// Keeps `view`, dated `at`, as `from`'s latest view unless a later-dated one is kept
    /// already, and notes whether it confirms the local configuration.
    fn record_view(&mut self, i: usize, b: u64, at: u64, view: View) {
        if let (Some(kept_at), Some(v)) = (self.view_at.get_mut(i), self.views.get_mut(i)) {
            if self.view_valid & b == 0 || at >= *kept_at {
                *kept_at = at;
                *v = view;
                self.view_valid |= b;
            }
        }
        self.confirm(b, view);
    }

    /// A host announcing the local configuration has applied it: once all have, no host
    /// still decides by an earlier one alone, and those go out of force.
    fn confirm(&mut self, b: u64, view: View) {
        if view.configured == self.configured {
            self.confirmed |= b;
            if self.others() & !self.confirmed == 0 {
                self.joint = [0; JOINT_MAX];
            }
        }
    }

    /// Records a PING from `from` received at `now`, carrying the sender's view. A view
    /// whose `fenced` holds the local host revokes any lease grant of `from`. The view is
    /// not kept (nothing says when it was sent: held up in transit, it could count for
    /// longer than `T` after its sender changed its mind); only its configuration is
    /// noted. Returns false (and changes nothing) if `from` is not a configured remote
    /// host.
    pub fn on_ping(&mut self, from: u32, now: u64, view: View) -> bool {
        if !self.on_message(from, now) {
            return false;
        }
        let b = bit(from);
        self.confirm(b, view);
        if view.fenced & bit(self.local) != 0 {
            self.grant_valid &= !b;
        }
        self.refresh(now);
        true
    }

    /// Records a PONG from `from` received at `now`, echoing `echo_sent_ns` (the local
    /// send time of the PING it answers) and carrying the sender's view. The view is
    /// kept dated `echo_sent_ns`: the sender made it after that, so it counts for no
    /// longer than `T` after it was made, however long it was held up in transit. If
    /// `view.fenced` does not hold the local host, `from` grants a lease until
    /// `echo_sent_ns + T`; otherwise any grant of `from` is revoked. An echo later than
    /// `now` keeps no view and grants nothing. Returns false (and changes nothing) if
    /// `from` is not a configured remote host.
    pub fn on_pong(&mut self, from: u32, now: u64, echo_sent_ns: u64, view: View) -> bool {
        if !self.on_message(from, now) {
            return false;
        }
        let Some(i) = self.remote(from) else {
            return false;
        };
        let b = bit(from);
        if echo_sent_ns <= now {
            self.record_view(i, b, echo_sent_ns, view);
        } else {
            self.confirm(b, view);
        }
        if view.fenced & bit(self.local) != 0 {
            self.grant_valid &= !b;
        } else if echo_sent_ns <= now {
            let until = echo_sent_ns.saturating_add(self.timeout);
            if let Some(g) = self.grant_until.get_mut(i) {
                if self.grant_valid & b == 0 || until > *g {
                    *g = until;
                }
                self.grant_valid |= b;
            }
        }
        self.refresh(now);
        true
    }

    /// Advances time to `now`: fences the configured hosts that are not heard and lifts
    /// the fences the rejoin rule allows. Call it at least every heartbeat.
    pub fn tick(&mut self, now: u64) {
        self.refresh(now);
        let heard = self.heard(now);
        for id in ids(self.others()) {
            let b = bit(id);
            if heard & b == 0 {
                self.fenced |= b;
            } else if self.fenced & b != 0 && self.may_rejoin(id, now) {
                self.fenced &= !b;
            }
        }
        self.refresh(now);
    }

    fn may_rejoin(&self, id: u32, now: u64) -> bool {
        let Some(i) = self.remote(id) else {
            return false;
        };
        let b = bit(id);
        let Some(&since) = self.heard_since.get(i) else {
            return false;
        };
        self.heard(now) & b != 0
            && now.saturating_sub(since) >= self.timeout
            && self.recovering & b == 0
            && self.fresh_views(now).all(|v| v.recovering & b == 0)
    }

    /// The views of other hosts dated within the timeout, with their senders.
    fn fresh_views_from(&self, now: u64) -> impl Iterator<Item = (u32, View)> + '_ {
        ids(self.others() & self.view_valid).filter_map(move |id| {
            let i = id as usize - 1;
            match (self.view_at.get(i), self.views.get(i)) {
                (Some(&at), Some(&v)) if self.within(at, now) => Some((id, v)),
                _ => None,
            }
        })
    }

    fn fresh_views(&self, now: u64) -> impl Iterator<Item = View> + '_ {
        self.fresh_views_from(now).map(|(_, v)| v)
    }

    /// Keeps `takeover_since` up to date: a target's majority fence observed at `now`
    /// starts or continues its wait; one not observed ends it.
    fn refresh(&mut self, now: u64) {
        if self.holds_lease(now) {
            if !self.lease_valid {
                self.lease_valid = true;
                self.lease_since = now;
            }
        } else {
            self.lease_valid = false;
        }
        for id in ids(self.others()) {
            let b = bit(id);
            if self.majority_fences(id, now) {
                if self.since_valid & b == 0 {
                    if let Some(s) = self.takeover_since.get_mut(id as usize - 1) {
                        *s = now;
                        self.since_valid |= b;
                    }
                }
            } else {
                self.since_valid &= !b;
            }
        }
    }

    /// Hosts heard at `now` (a valid message within the timeout); never the local host.
    pub fn heard(&self, now: u64) -> u64 {
        ids(self.others() & self.heard_valid)
            .filter(|&id| matches!(self.last_heard.get(id as usize - 1), Some(&t) if self.within(t, now)))
            .fold(0, |m, id| m | bit(id))
    }

    /// Hosts the local host fences.
    pub fn fenced(&self) -> u64 {
        self.fenced
    }

    /// Owners the local host announces as recovering.
    pub fn recovering(&self) -> u64 {
        self.recovering
    }

    /// Starts (`on`) or ends announcing `target` in `recovering`. Ignored for an id that
    /// is not a configured remote host.
    pub fn set_recovering(&mut self, target: u32, on: bool) {
        if self.remote(target).is_some() {
            if on {
                self.recovering |= bit(target);
            } else {
                self.recovering &= !bit(target);
            }
        }
    }

    /// The view to put in an outgoing PING or PONG at `now`.
    pub fn outgoing(&self, now: u64) -> View {
        View {
            heard: self.heard(now),
            fenced: self.fenced,
            recovering: self.recovering,
            configured: self.configured,
            joint: self.joint,
        }
    }

    /// Remote hosts heard at `now` and not fenced (the membership part of "up" for
    /// placement; the caller adds its own connection state).
    pub fn up(&self, now: u64) -> u64 {
        self.heard(now) & !self.fenced
    }

    /// Whether the local host holds its lease at `now` and has held it without
    /// interruption (at every call of a mutating method) for at least `duration_ns`.
    pub fn holds_lease_for(&self, now: u64, duration_ns: u64) -> bool {
        self.holds_lease(now) && self.lease_valid && now.saturating_sub(self.lease_since) >= duration_ns
    }

    /// Since when the local host has held its lease without interruption, if it held it
    /// at the last update. Every mutating method checks the lease before applying its
    /// change, so a lapse between two updates is always seen (grants only expire between
    /// updates).
    pub fn lease_held_since(&self) -> Option<u64> {
        self.lease_valid.then_some(self.lease_since)
    }

    /// Remote hosts whose lease grant is valid at `now`.
    pub fn grants(&self, now: u64) -> u64 {
        ids(self.others() & self.grant_valid)
            .filter(|&id| matches!(self.grant_until.get(id as usize - 1), Some(&u) if now < u))
            .fold(0, |m, id| m | bit(id))
    }

    /// Whether the local host holds its lease at `now`: it and the hosts whose grant is
    /// valid at `now` are a majority (of every configuration in force).
    pub fn holds_lease(&self, now: u64) -> bool {
        self.quorum(self.grants(now) | bit(self.local), now)
    }

    /// Until when the local host holds its lease if nothing changes the grants: the
    /// end of the grant that completes the last majority (0 if it does not hold it at
    /// `now`, `u64::MAX` if it alone is a majority of every configuration in force). For
    /// every `t >= now`, until the next call that changes state, `holds_lease(t)`
    /// implies `t < lease_until(now)`, and the converse holds unless a configuration
    /// announced only by a view goes out of force meanwhile (which can only make the
    /// lease easier); the kernel caches it so that the write path needs no lock to
    /// check the lease.
    pub fn lease_until(&self, now: u64) -> u64 {
        let mut until = u64::MAX;
        for mask in self.masks(now) {
            let local = u32::from(mask & bit(self.local) != 0);
            // Grants needed from hosts of `mask` besides the local host.
            let need = (0..=mask.count_ones()).find(|&g| mask_count_majority(g + local, mask)).unwrap_or(u32::MAX);
            if need == 0 {
                continue;
            }
            let valid = || {
                ids(self.others() & self.grant_valid & mask)
                    .filter_map(|id| self.grant_until.get(id as usize - 1).copied())
                    .filter(move |&u| u > now)
            };
            // The largest end `u` with at least `need` grants ending at `u` or later.
            let end = valid().filter(|&u| valid().filter(|&v| v >= u).count() as u32 >= need).max().unwrap_or(0);
            until = until.min(end);
        }
        until
    }

    /// Hosts whose latest view, dated within the timeout, has `target` in `fenced`,
    /// plus the local host if it fences `target`; `target` itself never counts.
    pub fn fencers(&self, target: u32, now: u64) -> u64 {
        let b = bit(target);
        if b == 0 {
            return 0;
        }
        let mut m = if self.fenced & b != 0 { bit(self.local) } else { 0 };
        for (id, v) in self.fresh_views_from(now) {
            if id != target && v.fenced & b != 0 {
                m |= bit(id);
            }
        }
        m
    }

    /// Whether a majority of configured hosts, the local one included, fences `target`
    /// at `now` (see [`fencers`](Membership::fencers)). False for the local host and for
    /// unconfigured ids.
    pub fn majority_fences(&self, target: u32, now: u64) -> bool {
        self.remote(target).is_some() && self.quorum(self.fencers(target, now), now)
    }

    /// Whether the local host may write recovered blocks of `target`'s volumes at `now`:
    /// it holds its lease, a majority fences `target` now and has done so without
    /// interruption for at least `T + T/5`.
    pub fn takeover_ready(&self, target: u32, now: u64) -> bool {
        let Some(i) = self.remote(target) else {
            return false;
        };
        let Some(&since) = self.takeover_since.get(i) else {
            return false;
        };
        self.holds_lease(now)
            && self.majority_fences(target, now)
            && self.since_valid & bit(target) != 0
            && now.saturating_sub(since) >= self.takeover_wait_ns()
    }

    /// Owners announced in `recovering` by the local host or by a view dated within
    /// the timeout.
    pub fn announced_recovering(&self, now: u64) -> u64 {
        self.fresh_views(now).fold(self.recovering, |m, v| m | v.recovering) & self.configured
    }

    /// Whether the views dated within the timeout that fence the local host are a
    /// majority of some configuration in force: a peer has taken or may take over the local
    /// host's replicated volumes.
    pub fn fenced_by_majority(&self, now: u64) -> bool {
        let me = bit(self.local);
        let fencers = self.fresh_views_from(now).filter(|(_, v)| v.fenced & me != 0).fold(0, |m, (id, _)| m | bit(id));
        // Any configuration in force is enough: a takeover needs a majority of one of
        // them, and this side must not wait for the strictest.
        self.masks(now).any(|m| mask_majority(fencers & m, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: u64 = 1_000;
    const A: u32 = 1;
    const B: u32 = 2;
    const C: u32 = 3;
    const ABC: u64 = 0b111;

    fn m(local: u32, configured: u64) -> Membership<8> {
        Membership::new(local, configured, T).unwrap()
    }

    fn v(fenced: u64, recovering: u64) -> View {
        View { fenced, recovering, ..View::default() }
    }

    /// Hears `from` every `T/10` in `[from_t, to_t]`, with its view (`None`: plain
    /// messages), ticking after each.
    fn hear(x: &mut Membership<8>, from: u32, from_t: u64, to_t: u64, view: Option<View>) {
        let mut t = from_t;
        while t <= to_t {
            match view {
                Some(vw) => assert!(x.on_pong(from, t, t, vw)),
                None => assert!(x.on_message(from, t)),
            }
            x.tick(t);
            t += T / 10;
        }
    }

    #[test]
    fn construction_is_checked() {
        assert_eq!(Membership::<8>::new(0, 1, T), Err(MembershipError::BadLocalId));
        assert_eq!(Membership::<8>::new(9, 1 << 8, T), Err(MembershipError::BadLocalId));
        assert_eq!(Membership::<8>::new(2, 1, T), Err(MembershipError::LocalNotConfigured));
        assert_eq!(Membership::<8>::new(1, 1 | 1 << 8, T), Err(MembershipError::BadConfigured));
        assert_eq!(Membership::<8>::new(1, 1, 0), Err(MembershipError::ZeroTimeout));
        assert_eq!(Membership::<65>::new(1, 1, T), Err(MembershipError::TooManyHosts));
        let x: Membership = Membership::new(64, u64::MAX, T).unwrap();
        assert_eq!(x.fenced(), u64::MAX >> 1);
        assert_eq!(x.takeover_wait_ns(), 1_200);
    }

    #[test]
    fn ignores_bad_senders() {
        let mut x = m(A, ABC);
        let before = x.clone();
        for from in [0, A, 4, 9, 64, 65, u32::MAX] {
            assert!(!x.on_message(from, 5));
            assert!(!x.on_ping(from, 5, v(1, 1)));
            assert!(!x.on_pong(from, 5, 0, v(0, 0)));
        }
        assert_eq!(x, before);
        x.set_recovering(A, true);
        x.set_recovering(4, true);
        assert_eq!(x.recovering(), 0);
    }

    #[test]
    fn starts_fenced_and_rejoins_after_continuous_hearing() {
        let mut x = m(A, ABC);
        assert_eq!(x.fenced(), 0b110);
        hear(&mut x, B, 100, 100 + T - 1, None);
        assert_eq!(x.heard(100 + T - 1), 0b010);
        assert_eq!(x.fenced(), 0b110, "not yet heard for a full timeout");
        x.on_message(B, 100 + T);
        x.tick(100 + T);
        assert_eq!(x.fenced(), 0b100);
        assert_eq!(x.up(100 + T), 0b010);
    }

    #[test]
    fn silence_fences_and_fence_is_sticky() {
        let mut x = m(A, ABC);
        hear(&mut x, B, 0, 2 * T, None);
        assert_eq!(x.fenced() & 0b010, 0);
        // Silent from 2T: still heard until 3T - 1, fenced at 3T.
        x.tick(3 * T - 1);
        assert_eq!(x.fenced() & 0b010, 0);
        x.tick(3 * T);
        assert_ne!(x.fenced() & 0b010, 0);
        // Heard again: the fence stays until a full timeout of continuous hearing.
        hear(&mut x, B, 3 * T + 1, 4 * T, None);
        assert_ne!(x.fenced() & 0b010, 0);
        hear(&mut x, B, 4 * T + 1, 4 * T + 1, None);
        assert_eq!(x.fenced() & 0b010, 0);
    }

    #[test]
    fn a_gap_restarts_the_rejoin_clock() {
        let mut x = m(A, ABC);
        hear(&mut x, B, 0, T / 2, None);
        // A gap of exactly T breaks continuity.
        hear(&mut x, B, T / 2 + T, 2 * T + T / 2 - 1, None);
        assert_ne!(x.fenced() & 0b010, 0);
        hear(&mut x, B, 2 * T + T / 2, 2 * T + T / 2, None);
        assert_eq!(x.fenced() & 0b010, 0);
    }

    #[test]
    fn recovering_announcements_block_rejoin() {
        // C announces A in recovering: B keeps A fenced.
        let mut b = m(B, ABC);
        let mut t = 0;
        while t <= 3 * T {
            b.on_message(A, t);
            b.on_pong(C, t, t, v(0b001, 0b001));
            b.tick(t);
            t += T / 10;
        }
        assert_ne!(b.fenced() & 0b001, 0);
        assert_eq!(b.fenced() & 0b100, 0, "C itself rejoined");
        // C stops announcing: A rejoins (it has been heard continuously all along).
        b.on_message(A, t);
        b.on_pong(C, t, t, v(0b001, 0));
        b.tick(t);
        assert_eq!(b.fenced() & 0b001, 0);

        // B's own recovering blocks too.
        let mut b = m(B, ABC);
        b.set_recovering(A, true);
        assert_eq!(b.outgoing(0).recovering, 0b001);
        hear(&mut b, A, 0, 3 * T, None);
        assert_ne!(b.fenced() & 0b001, 0);
        b.set_recovering(A, false);
        hear(&mut b, A, 3 * T + 1, 3 * T + 1, None);
        assert_eq!(b.fenced() & 0b001, 0);

        // A stale announcement (older than T) does not block.
        let mut b = m(B, ABC);
        b.on_pong(C, 0, 0, v(0, 0b001));
        hear(&mut b, A, 0, 2 * T, None);
        assert_eq!(b.fenced() & 0b001, 0);
    }

    #[test]
    fn lease_needs_a_majority_of_grants() {
        let mut a = m(A, ABC);
        assert!(!a.holds_lease(0));
        // PING sent at 100, PONG from B at 150: lease until 100 + T.
        assert!(a.on_pong(B, 150, 100, v(0, 0)));
        assert!(a.holds_lease(150));
        assert!(a.holds_lease(100 + T - 1));
        assert!(!a.holds_lease(100 + T));
        assert_eq!(a.grants(150), 0b010);
        // A fenced PONG revokes the grant at once.
        a.on_pong(B, 200, 190, v(0b001, 0));
        assert!(!a.holds_lease(200));
        // C grants: lease again.
        a.on_pong(C, 210, 200, v(0b010, 0));
        assert!(a.holds_lease(210));
        // An echo from the future grants nothing.
        let mut a = m(A, ABC);
        a.on_pong(B, 10, 20, v(0, 0));
        assert!(!a.holds_lease(10));
        // An older echo does not shorten a grant.
        let mut a = m(A, ABC);
        a.on_pong(B, 500, 500, v(0, 0));
        a.on_pong(B, 501, 100, v(0, 0));
        assert!(a.holds_lease(500 + T - 1));
    }

    #[test]
    fn a_fencing_ping_revokes_the_grant() {
        let mut a = m(A, ABC);
        a.on_pong(B, 10, 10, v(0, 0));
        assert!(a.holds_lease(11));
        a.on_ping(B, 12, v(0b001, 0));
        assert!(!a.holds_lease(12));
    }

    #[test]
    fn announced_recovering_unites_fresh_views() {
        let mut a = m(A, ABC);
        assert_eq!(a.announced_recovering(0), 0);
        a.on_pong(B, 0, 0, v(0, 0b001));
        a.on_pong(C, 0, 0, v(0, 0b010 | 0b1000_0000));
        assert_eq!(a.announced_recovering(T - 1), 0b011);
        assert_eq!(a.announced_recovering(T), 0);
        let mut b = m(B, ABC);
        b.set_recovering(A, true);
        assert_eq!(b.announced_recovering(5 * T), 0b001);
    }

    #[test]
    fn lease_continuity() {
        let mut a = m(A, ABC);
        assert!(!a.holds_lease_for(0, 0));
        a.on_pong(B, 100, 100, v(0, 0));
        assert!(a.holds_lease_for(100, 0));
        assert!(!a.holds_lease_for(100 + T / 2, T / 2 + 1));
        a.on_pong(B, 100 + T / 2, 100 + T / 2, v(0, 0));
        assert!(a.holds_lease_for(100 + T / 2, T / 2));
        // A gap seen by a call: the count starts over.
        a.tick(100 + 2 * T);
        a.on_pong(B, 100 + 2 * T, 100 + 2 * T, v(0, 0));
        assert!(!a.holds_lease_for(100 + 2 * T, 1));
        assert!(a.holds_lease_for(100 + 2 * T, 0));
        assert_eq!(a.lease_held_since(), Some(100 + 2 * T));
        // A gap no call saw (the grant ended between two calls): the PONG that grants
        // again sees it before applying its grant.
        let t = 100 + 2 * T;
        a.on_pong(B, t + T + 5, t + T + 5, v(0, 0));
        assert_eq!(a.lease_held_since(), Some(t + T + 5));
        assert!(!a.holds_lease_for(t + T + 5, 1));
        // No lease: no start.
        a.tick(t + 3 * T);
        assert_eq!(a.lease_held_since(), None);
    }

    #[test]
    fn lease_with_five_hosts_needs_two_grants() {
        let mut a = m(A, 0b11111);
        a.on_pong(B, 10, 10, v(0, 0));
        assert!(!a.holds_lease(10));
        a.on_pong(C, 10, 10, v(0, 0));
        assert!(a.holds_lease(10));
    }

    #[test]
    fn majority_fence_counts_fresh_views_only() {
        let mut b = m(B, ABC);
        // B fences A (never heard), C's view fences A: majority.
        b.on_pong(C, 0, 0, v(0b001, 0));
        assert!(b.majority_fences(A, 0));
        assert_eq!(b.fencers(A, 0), 0b110);
        assert!(b.majority_fences(A, T - 1));
        assert!(!b.majority_fences(A, T), "C's view is older than T");
        // A's own view does not count for A.
        let mut b = m(B, ABC);
        b.on_pong(A, 0, 0, v(0b001, 0));
        assert!(!b.majority_fences(A, 0));
        assert!(!b.majority_fences(B, 0));
        assert!(!b.majority_fences(9, 0));
    }

    /// A view counts for `T` from the PING its PONG answers, however late it arrives: a
    /// fence held up in transit must not outlast the owner's settled lease (`make soak`
    /// found the owner acting on its lease while another host, counting such a view,
    /// was ready to take over). A PING's view is not kept at all.
    #[test]
    fn views_are_dated_by_their_echo() {
        let mut b = m(B, ABC);
        // C's PONG echoes a PING of 0 and arrives at T - 100: it fences A until T only.
        b.on_pong(C, T - 100, 0, v(0b001, 0));
        assert!(b.majority_fences(A, T - 1));
        assert!(!b.majority_fences(A, T), "dated 0, not T - 100");
        // One arriving a full timeout after its echo counts not at all.
        let mut b = m(B, ABC);
        b.on_pong(C, 2 * T, T, v(0b001, 0));
        assert!(!b.majority_fences(A, 2 * T));
        // An earlier-dated view does not replace a later one.
        let mut b = m(B, ABC);
        b.on_pong(C, 500, 500, v(0, 0));
        b.on_pong(C, 510, 100, v(0b001, 0));
        assert!(!b.majority_fences(A, 510));
        // A PING's view is not kept (it still confirms the configuration).
        let mut b = m(B, ABC);
        b.on_ping(C, 0, v(0b001, 0b001));
        assert!(!b.majority_fences(A, 0));
        assert_eq!(b.announced_recovering(0), 0);
    }

    #[test]
    fn takeover_waits_six_fifths_of_the_timeout() {
        let mut b = m(B, ABC);
        // C keeps granting B and fencing A; A is silent.
        let mut t = 0;
        let mut ready_at = None;
        while t <= 5 * T {
            b.on_pong(C, t, t, v(0b001, 0));
            b.tick(t);
            if ready_at.is_none() && b.takeover_ready(A, t) {
                ready_at = Some(t);
            }
            t += T / 10;
        }
        assert!(b.holds_lease(0));
        assert_eq!(ready_at, Some(T + T / 5));
    }

    #[test]
    fn takeover_wait_restarts_when_the_majority_breaks() {
        let mut b = m(B, ABC);
        let mut t = 0;
        while t <= T {
            b.on_pong(C, t, t, v(0b001, 0));
            b.tick(t);
            t += T / 10;
        }
        // C no longer fences A (say it rejoined it): the wait starts over.
        b.on_pong(C, t, t, v(0, 0));
        b.tick(t);
        assert!(!b.majority_fences(A, t));
        let restart = t + T / 10;
        t = restart;
        while t < restart + T + T / 5 {
            b.on_pong(C, t, t, v(0b001, 0));
            b.tick(t);
            assert!(!b.takeover_ready(A, t), "at {t}");
            t += T / 10;
        }
        b.on_pong(C, t, t, v(0b001, 0));
        assert!(b.takeover_ready(A, t));
    }

    #[test]
    fn takeover_needs_the_lease() {
        let mut b = m(B, ABC);
        // C fences A and B: no lease for B, no takeover.
        let mut t = 0;
        while t <= 3 * T {
            b.on_pong(C, t, t, v(0b011, 0));
            b.tick(t);
            assert!(!b.takeover_ready(A, t));
            t += T / 10;
        }
        assert!(b.majority_fences(A, t - T / 10));
    }

    #[test]
    fn expired_views_break_the_majority_between_calls() {
        let mut b = m(B, ABC);
        b.on_pong(C, 0, 0, v(0b001, 0));
        b.tick(0);
        // No call between T - 1 and 2T: C's view expired at T. A new view at 2T must
        // not continue the wait begun at 0.
        b.on_pong(C, 2 * T, 2 * T, v(0b001, 0));
        assert!(!b.takeover_ready(A, 2 * T));
        for t in [2 * T + T / 2, 3 * T, 3 * T + T / 5 - 1] {
            b.on_pong(C, t, t, v(0b001, 0));
            assert!(!b.takeover_ready(A, t));
        }
        b.tick(3 * T + T / 5);
        assert!(b.takeover_ready(A, 3 * T + T / 5));
    }

    #[test]
    fn fenced_by_majority_needs_both_others_of_three() {
        let mut a = m(A, ABC);
        a.on_pong(B, 0, 0, v(0b001, 0));
        assert!(!a.fenced_by_majority(0));
        a.on_pong(C, 1, 1, v(0b001, 0));
        assert!(a.fenced_by_majority(1));
        assert!(!a.fenced_by_majority(T), "B's view is older than T");
    }

    /// Two hosts: a majority is both, so neither can act alone.
    #[test]
    fn two_hosts_nobody_acts_alone() {
        let ab = 0b011;
        let mut a = m(A, ab);
        let mut b = m(B, ab);
        // Both up and talking: A holds its lease (B's grant).
        let mut t = 0;
        while t <= 2 * T {
            b.on_ping(A, t, a.outgoing(t));
            a.on_pong(B, t, t, b.outgoing(t));
            a.tick(t);
            b.tick(t);
            t += T / 10;
        }
        assert!(a.holds_lease(t - T / 10));
        assert!(b.fenced() == 0 && a.fenced() == 0);
        // The link breaks: both fence each other, nobody holds a lease, no takeover ever.
        let cut = t;
        while t <= cut + 10 * T {
            a.tick(t);
            b.tick(t);
            if t >= cut + T {
                assert!(!a.holds_lease(t));
                assert!(!b.holds_lease(t));
            }
            assert!(!b.majority_fences(A, t) || t < cut + T);
            assert!(!b.takeover_ready(A, t));
            assert!(!a.takeover_ready(B, t));
            t += T / 10;
        }
        assert_eq!(b.fenced(), 0b001);
        assert_eq!(b.fencers(A, t), 0b010);
        assert!(!b.majority_fences(A, t));
    }

    /// A and B cannot hear each other, both hear C. A and B fence each other, C fences
    /// nobody: A and B both keep their leases (C grants both), nobody takes over.
    #[test]
    fn non_transitive_partition() {
        let mut hosts = [m(A, ABC), m(B, ABC), m(C, ABC)];
        let link = |x: u32, y: u32| !matches!((x, y), (1, 2) | (2, 1));
        let mut t = 0;
        while t <= 10 * T {
            // Every host pings every other it can reach; the other answers.
            for x in [A, B, C] {
                for y in [A, B, C] {
                    if x == y || !link(x, y) {
                        continue;
                    }
                    let vx = hosts[x as usize - 1].outgoing(t);
                    hosts[y as usize - 1].on_ping(x, t, vx);
                    let vy = hosts[y as usize - 1].outgoing(t);
                    hosts[x as usize - 1].on_pong(y, t, t, vy);
                }
            }
            for h in hosts.iter_mut() {
                h.tick(t);
            }
            if t >= 2 * T {
                let [a, b, c] = &hosts;
                assert_eq!(a.fenced(), 0b010);
                assert_eq!(b.fenced(), 0b001);
                assert_eq!(c.fenced(), 0);
                assert!(a.holds_lease(t) && b.holds_lease(t) && c.holds_lease(t));
                assert!(!b.majority_fences(A, t) && !a.majority_fences(B, t));
                assert!(!b.takeover_ready(A, t) && !a.takeover_ready(B, t));
                assert!(!c.majority_fences(A, t) && !c.majority_fences(B, t));
                assert!(!a.fenced_by_majority(t) && !b.fenced_by_majority(t));
            }
            t += T / 10;
        }
    }

    /// A crash of A: B and C fence it, B takes over after the wait, C keeps A fenced
    /// while B announces recovering, and lifts it once B is done and A is back.
    #[test]
    fn crash_takeover_and_rejoin() {
        let mut hosts = [m(A, ABC), m(B, ABC), m(C, ABC)];
        let mut a_alive = true;
        let mut t = 0;
        let mut took_over = None;
        let mut finished = None;
        while t <= 20 * T {
            if t == 3 * T {
                a_alive = false;
            }
            if t == 12 * T {
                a_alive = true;
                hosts[0] = m(A, ABC);
            }
            for x in [A, B, C] {
                for y in [A, B, C] {
                    if x == y || (!a_alive && (x == A || y == A)) {
                        continue;
                    }
                    let vx = hosts[x as usize - 1].outgoing(t);
                    hosts[y as usize - 1].on_ping(x, t, vx);
                    let vy = hosts[y as usize - 1].outgoing(t);
                    hosts[x as usize - 1].on_pong(y, t, t, vy);
                }
            }
            for h in hosts.iter_mut() {
                h.tick(t);
            }
            if t == 2 * T {
                assert!(hosts.iter().all(|h| h.fenced() == 0 && h.holds_lease(t)));
            }
            if took_over.is_none() && hosts[1].takeover_ready(A, t) {
                took_over = Some(t);
                hosts[1].set_recovering(A, true);
            }
            if t == 14 * T {
                // Recovery done.
                hosts[1].set_recovering(A, false);
                finished = Some(t);
            }
            if (12 * T..=14 * T).contains(&t) {
                assert_ne!(hosts[2].fenced() & 0b001, 0, "C lifted A while B recovers, at {t}");
            }
            t += T / 10;
        }
        // Last heard at 3T - T/10: fenced at 4T - T/10 by B and C; C's view with the fence
        // reaches B in the next round, at 4T, and the wait ends T + T/5 later.
        assert_eq!(took_over, Some(4 * T + T + T / 5));
        assert!(finished.is_some());
        assert!(hosts.iter().all(|h| h.fenced() == 0), "A rejoined");
    }

    // ---- Robustness ----

    fn cv(fenced: u64, configured: u64, joint: [u64; JOINT_MAX]) -> View {
        View { fenced, configured, joint, ..View::default() }
    }

    /// Hosts 1-3 configured `{1,2,3}`; host 3 applies `{1..5}` while 1 and 2 have not
    /// (a rolling change), and is cut from them. Hosts 4 and 5 (already on the new
    /// configuration) fence host 1 and grant host 3 its lease: a majority of the new
    /// configuration, disjoint from the old one's {1,2}, where host 1 still holds its
    /// lease. Joint majorities keep host 3 from acting until 1 or 2 joins it.
    #[test]
    fn rolling_change_needs_majorities_of_both_configurations() {
        const OLD: u64 = 0b00111;
        const NEW: u64 = 0b11111;
        // Hosts 4 and 5 fence 1 and 2 and grant host 3 its lease for 4 timeouts.
        let from_new_hosts = |x: &mut Membership<8>| {
            let mut t = 0;
            while t <= 4 * T {
                for from in [4, 5] {
                    x.on_pong(from, t, t, cv(bit(A) | bit(B), NEW, [0; JOINT_MAX]));
                }
                x.tick(t);
                t += T / 10;
            }
            t
        };
        let mut x = m(C, OLD);
        x.set_configured(NEW).unwrap();
        assert_eq!(x.joint(), [OLD, 0]);
        assert_eq!(x.unconfirmed(), 0b11011);
        let t = from_new_hosts(&mut x);
        assert_eq!(x.fencers(A, t), 0b11100);
        assert!(!x.majority_fences(A, t), "{{3,4,5}} is no majority of {{1,2,3}}");
        assert!(!x.holds_lease(t) && !x.takeover_ready(A, t));
        // Without the old configuration, the new one's majority alone would do.
        let mut alone = m(C, NEW);
        let t = from_new_hosts(&mut alone);
        assert!(alone.takeover_ready(A, t));
    }

    #[test]
    fn joint_ends_when_every_host_announces_the_new_configuration() {
        const OLD: u64 = 0b0111;
        const NEW: u64 = 0b1111;
        let mut x = m(A, OLD);
        x.set_configured(NEW).unwrap();
        for (i, from) in [B, C].into_iter().enumerate() {
            x.on_ping(from, 10 + i as u64, cv(0, NEW, [OLD, 0]));
        }
        x.on_ping(4, 12, cv(0, OLD, [0; JOINT_MAX]));
        assert_eq!(x.joint(), [OLD, 0], "host 4 announced another configuration");
        assert_eq!(x.unconfirmed(), 0b1000);
        x.on_ping(4, 13, cv(0, NEW, [0; JOINT_MAX]));
        assert_eq!(x.joint(), [0; JOINT_MAX]);
        assert_eq!(x.unconfirmed(), 0);
        // One host left: nothing to wait for.
        let mut y = m(A, 0b011);
        y.set_configured(0b001).unwrap();
        assert_eq!(y.joint(), [0; JOINT_MAX]);
        // A list of this host alone (where cluster apply starts) is not kept: found by
        // the guests, where it made the other hosts need this one for every majority.
        let mut z = m(A, 0b001);
        z.set_configured(0b111).unwrap();
        assert_eq!((z.joint(), z.unconfirmed()), ([0; JOINT_MAX], 0));
    }

    /// A host that knows nothing of a change in progress (new, or restarted) counts the
    /// configurations the views it receives announce.
    #[test]
    fn announced_configurations_count() {
        const OLD: u64 = 0b00111;
        const NEW: u64 = 0b11111;
        let mut x = m(4, NEW);
        let mut t = 0;
        while t <= 3 * T {
            x.on_pong(C, t, t, cv(0, NEW, [OLD, 0]));
            x.on_pong(5, t, t, cv(0, NEW, [0; JOINT_MAX]));
            x.tick(t);
            t += T / 10;
        }
        assert!(!x.holds_lease(t), "{{3,4,5}} is no majority of {{1,2,3}}, which host 3 still counts");
        assert_eq!(x.lease_until(t), 0);
        x.on_pong(B, t, t, cv(0, NEW, [OLD, 0]));
        assert!(x.holds_lease(t), "{{2,3}} is a majority of {{1,2,3}}");
        // The laggard: host 1 still on {1,2,3} counts {1..5} while it hears of it.
        let mut l = m(A, OLD);
        l.on_pong(B, t, t, cv(0, OLD, [0; JOINT_MAX]));
        assert!(l.holds_lease(t));
        l.on_pong(C, t, t, cv(0b001, NEW, [OLD, 0]));
        assert!(!l.holds_lease(t), "{{1,2}} is no majority of {{1..5}}");
        l.on_pong(B, t + T, t + T, cv(0, OLD, [0; JOINT_MAX]));
        assert!(l.holds_lease(t + T), "host 3's view is no longer in force");
    }

    #[test]
    fn changes_are_checked() {
        let mut x = m(A, 0b11111);
        assert_eq!(x.set_configured(0b00011), Err(MembershipError::RemovesMajority));
        assert_eq!(x.set_configured(0b1_0000_0000), Err(MembershipError::LocalNotConfigured));
        assert_eq!(x.configured(), 0b11111);
        x.set_configured(0b00111).unwrap();
        // {1,2,3} alone would remove a majority of {1..5}, which is still in force.
        assert_eq!(x.set_configured(0b00001), Err(MembershipError::RemovesMajority));
        x.set_configured(0b01111).unwrap();
        assert_eq!(x.joint(), [0b11111, 0b00111]);
        assert_eq!(x.set_configured(0b10111), Err(MembershipError::ChangeInProgress));
        // Going back to a configuration in force frees its slot.
        x.set_configured(0b00111).unwrap();
        assert_eq!(x.joint(), [0b11111, 0b01111]);
        x.set_configured(0b00111).unwrap();
        assert_eq!(x.joint(), [0b11111, 0b01111]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Msg(u32, u64),
        Ping(u32, u64, u64, u64, u64),
        Pong(u32, u64, u64, u64, u64, u64),
        Tick(u64),
        Recovering(u32, bool),
        Configure(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = prop_oneof![0u32..=9, Just(64u32), Just(u32::MAX)];
        let time = prop_oneof![0u64..20_000, Just(u64::MAX), Just(u64::MAX - 1)];
        prop_oneof![
            (id.clone(), time.clone()).prop_map(|(f, t)| Op::Msg(f, t)),
            (id.clone(), time.clone(), any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(f, t, a, b, c)| Op::Ping(f, t, a, b, c)),
            (id.clone(), time.clone(), time.clone(), any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(f, t, e, a, b, c)| Op::Pong(f, t, e, a, b, c)),
            time.prop_map(Op::Tick),
            (id, any::<bool>()).prop_map(|(f, on)| Op::Recovering(f, on)),
            any::<u64>().prop_map(Op::Configure),
        ]
    }

    proptest! {
        /// Any input: no panic, and the invariants hold: only configured remote hosts are
        /// fenced, heard or recovering; the local host is never fenced; a takeover is only
        /// ready with the lease and a majority fence.
        #[test]
        fn never_panics(local in 1u32..=8, configured in any::<u8>(), ops in proptest::collection::vec(op(), 0..120)) {
            let configured = u64::from(configured) | 1 << (local - 1);
            let mut x = Membership::<8>::new(local, configured, T).unwrap();
            let mut last = 0;
            for o in ops {
                match o {
                    Op::Msg(f, t) => { x.on_message(f, t); last = t; }
                    Op::Ping(f, t, fe, r, c) => {
                        x.on_ping(f, t, View { heard: 0, fenced: fe, recovering: r, configured: c, joint: [c >> 8, 0] });
                        last = t;
                    }
                    Op::Pong(f, t, e, fe, r, c) => {
                        x.on_pong(f, t, e, View { heard: fe, fenced: fe, recovering: r, configured: c, joint: [0, c] });
                        last = t;
                    }
                    Op::Tick(t) => { x.tick(t); last = t; }
                    Op::Recovering(f, on) => x.set_recovering(f, on),
                    Op::Configure(c) => { let _ = x.set_configured(c); }
                }
                let others = x.configured() & !(1 << (local - 1));
                prop_assert_eq!(x.fenced() & !others, 0);
                prop_assert_eq!(x.recovering() & !others, 0);
                prop_assert_eq!(x.heard(last) & !others, 0);
                prop_assert_eq!(x.grants(last) & !others, 0);
                for target in 0..=9u32 {
                    if x.takeover_ready(target, last) {
                        prop_assert!(x.holds_lease(last) && x.majority_fences(target, last));
                    }
                    let tb = if (1..=64).contains(&target) { 1u64 << (target - 1) } else { 0 };
                    prop_assert_eq!(x.fencers(target, last) & tb, 0);
                }
                let _ = x.outgoing(last);
                let _ = x.fenced_by_majority(last);
                let _ = x.up(last);
            }
        }
    }

    /// `reset` in place gives what `new` returns, whatever the state before, and
    /// changes nothing when it refuses.
    #[test]
    fn reset_equals_new() {
        let mut x = m(A, 0b111);
        x.on_ping(B, 5, View { heard: 0b11, fenced: 0, recovering: 0, configured: 0b111, joint: [0; JOINT_MAX] });
        x.tick(T * 3);
        let before = x.clone();
        assert_eq!(x.reset(9, 0b111, T), Err(MembershipError::BadLocalId));
        assert_eq!(x, before);
        x.reset(B, 0b1011, 2 * T).unwrap();
        assert_eq!(x, Membership::new(B, 0b1011, 2 * T).unwrap());
        let mut zero = Membership::<8>::new(1, 1, 1).unwrap();
        zero.local = 0;
        zero.configured = 0;
        zero.fenced = 0;
        zero.timeout = 0;
        zero.reset(A, 0b111, T).unwrap();
        assert_eq!(zero, m(A, 0b111));
    }

    #[test]
    fn size_for_64_hosts() {
        // The kernel embeds one per host; keep it to a few KiB.
        let size = core::mem::size_of::<Membership>();
        assert!(size <= 6 * 1024, "{size}");
    }

    proptest! {
        /// The cached lease end agrees with `holds_lease` at every later time, after any
        /// sequence of PONGs (some fencing the local host) and ticks, for 3 to 7 hosts.
        #[test]
        fn lease_until_matches_holds_lease(
            hosts in 3u32..=7,
            events in proptest::collection::vec((1u32..=7, 0u64..T / 2, 0u64..T, any::<bool>()), 0..40),
        ) {
            let configured = (1u64 << hosts) - 1;
            let mut a = m(A, configured);
            let mut now = 0;
            for (from, step, age, fence) in events {
                now += step;
                if from != A && from <= hosts {
                    let view = v(if fence { bit(A) } else { 0 }, 0);
                    a.on_pong(from, now, now.saturating_sub(age), view);
                }
                a.tick(now);
                let until = a.lease_until(now);
                for t in [now, now + 1, now + T / 3, now + T / 2, now + T - 1, now + T, now + 2 * T] {
                    prop_assert_eq!(a.holds_lease(t), t < until, "t={} until={}", t, until);
                }
                if until != 0 && until != u64::MAX {
                    prop_assert!(a.holds_lease(until - 1) && !a.holds_lease(until));
                }
            }
        }
    }
}
