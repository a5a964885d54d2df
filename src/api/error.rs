//! The one table from ferrocd's errors to etcd's gRPC status codes and exact
//! wire strings (etcd's rpctypes); clients match on these strings.

use tonic::{Code, Status};

use crate::apply::ApplyError;
use crate::auth::AuthError;
use crate::mvcc::MvccError;
use crate::raft::{ProposeError, ReconfigError};

/// Every error a client can get from the v3 API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    EmptyKey,
    KeyNotFound,
    ValueProvided,
    LeaseProvided,
    TooManyOps,
    DuplicateKey,
    InvalidSortOption,
    Compacted,
    FutureRev,
    LeaseNotFound,
    LeaseExists,
    LeaseTtlTooLarge,
    RequestTooLarge,
    TooManyRequests,
    NoLeader,
    LeaderChanged,
    Stopped,
    Timeout,
    TimeoutDueToConnectionLost,
    MemberExists,
    PeerUrlExists,
    NotEnoughStartedMembers,
    MemberBadUrls,
    MemberNotFound,
    MemberNotLearner,
    LearnerNotReady,
    TooManyLearners,
    Unhealthy,
    NoSpace,
    NotLeader,
    BadLeaderTransferee,
    /// The auth store's refusals, with the texts of etcd's gRPC layer.
    Auth(AuthError),
    /// Anything else, with its own text.
    Internal(String),
}

impl EtcdError {
    /// etcd's code and message for each error.
    fn wire(&self) -> (Code, &str) {
        use EtcdError::*;
        match self {
            EmptyKey => (Code::InvalidArgument, "etcdserver: key is not provided"),
            KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
            ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
            LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
            TooManyOps => (Code::InvalidArgument, "etcdserver: too many operations in txn request"),
            DuplicateKey => (Code::InvalidArgument, "etcdserver: duplicate key given in txn request"),
            InvalidSortOption => (Code::InvalidArgument, "etcdserver: invalid sort option"),
            Compacted => (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            FutureRev => (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
            LeaseExists => (Code::FailedPrecondition, "etcdserver: lease already exists"),
            LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
            RequestTooLarge => (Code::InvalidArgument, "etcdserver: request is too large"),
            TooManyRequests => (Code::ResourceExhausted, "etcdserver: too many requests"),
            NoLeader => (Code::Unavailable, "etcdserver: no leader"),
            LeaderChanged => (Code::Unavailable, "etcdserver: leader changed"),
            Stopped => (Code::Unavailable, "etcdserver: server stopped"),
            Timeout => (Code::Unavailable, "etcdserver: request timed out"),
            TimeoutDueToConnectionLost => (
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to connection lost",
            ),
            MemberExists => (Code::FailedPrecondition, "etcdserver: member ID already exist"),
            PeerUrlExists => (Code::FailedPrecondition, "etcdserver: Peer URLs already exists"),
            NotEnoughStartedMembers => (
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            MemberBadUrls => (Code::InvalidArgument, "etcdserver: given member URLs are invalid"),
            MemberNotFound => (Code::NotFound, "etcdserver: member not found"),
            MemberNotLearner => (
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            LearnerNotReady => (
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            TooManyLearners => (
                Code::FailedPrecondition,
                "etcdserver: too many learner members in cluster",
            ),
            Unhealthy => (Code::Unavailable, "etcdserver: unhealthy cluster"),
            NoSpace => (Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
            NotLeader => (Code::FailedPrecondition, "etcdserver: not leader"),
            BadLeaderTransferee => (Code::FailedPrecondition, "etcdserver: bad leader transferee"),
            Auth(e) => auth_wire(*e),
            Internal(message) => (Code::Unknown, message),
        }
    }
}

/// etcd's rpctypes for the auth errors.
fn auth_wire(e: AuthError) -> (Code, &'static str) {
    use AuthError::*;
    match e {
        RootUserNotExist => (Code::FailedPrecondition, "etcdserver: root user does not exist"),
        RootRoleNotExist => (
            Code::FailedPrecondition,
            "etcdserver: root user does not have root role",
        ),
        UserAlreadyExist => (Code::FailedPrecondition, "etcdserver: user name already exists"),
        UserEmpty => (Code::InvalidArgument, "etcdserver: user name is empty"),
        UserNotFound => (Code::FailedPrecondition, "etcdserver: user name not found"),
        RoleAlreadyExist => (Code::FailedPrecondition, "etcdserver: role name already exists"),
        RoleNotFound => (Code::FailedPrecondition, "etcdserver: role name not found"),
        RoleEmpty => (Code::InvalidArgument, "etcdserver: role name is empty"),
        AuthFailed => (
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
        PermissionDenied => (Code::PermissionDenied, "etcdserver: permission denied"),
        RoleNotGranted => (Code::FailedPrecondition, "etcdserver: role is not granted to the user"),
        PermissionNotGranted => (
            Code::FailedPrecondition,
            "etcdserver: permission is not granted to the role",
        ),
        AuthNotEnabled => (Code::FailedPrecondition, "etcdserver: authentication is not enabled"),
        InvalidAuthToken => (Code::Unauthenticated, "etcdserver: invalid auth token"),
        InvalidAuthMgmt => (Code::InvalidArgument, "etcdserver: invalid auth management"),
        AuthOldRevision => (Code::InvalidArgument, "etcdserver: revision of auth store is old"),
        PermissionNotGiven => (Code::InvalidArgument, "etcdserver: permission not given"),
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        EtcdError::Auth(e).into()
    }
}

impl EtcdError {
    /// etcd's text for this error.
    pub fn message(&self) -> &str {
        self.wire().1
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        let (code, message) = e.wire();
        Status::new(code, message)
    }
}

impl From<MvccError> for EtcdError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::Compacted => EtcdError::Compacted,
            MvccError::FutureRevision => EtcdError::FutureRev,
            MvccError::Storage(message) => EtcdError::Internal(format!("etcdserver: {message}")),
        }
    }
}

impl From<ApplyError> for EtcdError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Mvcc(e) => e.into(),
            ApplyError::KeyNotFound => EtcdError::KeyNotFound,
            ApplyError::LeaseNotFound => EtcdError::LeaseNotFound,
            ApplyError::LeaseExists => EtcdError::LeaseExists,
            ApplyError::Undecodable => EtcdError::Internal("etcdserver: undecodable request".into()),
            ApplyError::NoSpace => EtcdError::NoSpace,
            ApplyError::Auth(e) => EtcdError::Auth(e),
        }
    }
}

impl From<ProposeError> for EtcdError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NoLeader => EtcdError::NoLeader,
            ProposeError::LeaderChanged => EtcdError::LeaderChanged,
            ProposeError::TooManyRequests => EtcdError::TooManyRequests,
            ProposeError::Timeout => EtcdError::Timeout,
            ProposeError::Stopped => EtcdError::Stopped,
            ProposeError::NotDelivered => EtcdError::TimeoutDueToConnectionLost,
            ProposeError::Internal(message) => EtcdError::Internal(format!("etcdserver: {message}")),
        }
    }
}

impl From<ReconfigError> for EtcdError {
    fn from(e: ReconfigError) -> Self {
        match e {
            ReconfigError::MemberExists => EtcdError::MemberExists,
            ReconfigError::PeerUrlExists => EtcdError::PeerUrlExists,
            ReconfigError::NotEnoughStarted => EtcdError::NotEnoughStartedMembers,
            ReconfigError::MemberNotFound => EtcdError::MemberNotFound,
            ReconfigError::MemberNotLearner => EtcdError::MemberNotLearner,
            ReconfigError::LearnerNotReady => EtcdError::LearnerNotReady,
            ReconfigError::TooManyLearners => EtcdError::TooManyLearners,
            ReconfigError::Unhealthy => EtcdError::Unhealthy,
            ReconfigError::Propose(e) => e.into(),
        }
    }
}

macro_rules! status_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Status {
            fn from(e: $t) -> Status {
                EtcdError::from(e).into()
            }
        }
    )*};
}
status_from!(MvccError, ApplyError, ProposeError, ReconfigError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_match_etcd() {
        let status = Status::from(ApplyError::Mvcc(MvccError::Compacted));
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(Status::from(ProposeError::NoLeader).code(), Code::Unavailable);
    }
}
