//! RFC 7433 User-to-User on the legs the switch places, and which received
//! headers may pass from one leg to the next.
//!
//! A leg toward a trunk peer follows the peer's `user_to_user` (else its
//! profile's `[calls] user_to_user`); a leg toward a phone (the agent leg)
//! follows its profile's. With a template (or `true`: the case reference in
//! hex), the leg gets a `User-to-User` built from the call's case reference
//! (the `X-Case-Id` case data, else the interaction id), which replaces any
//! UUI received; with none set, a UUI received on the caller's leg passes on
//! (it is in the default `pass_headers`); `false` sends none at all.
//!
//! It also owns the rule that identity headers (`identity`) never pass.
//! Sans-IO, configuration only.

use super::settings::UserToUser;

use super::command::CallId;
use super::identity::is_identity_header;
use super::outbound::Target;
use super::CallLayer;

const UUI: &str = "User-to-User";

impl CallLayer {
    /// The User-to-User header the switch writes on a leg of `call` toward
    /// `target`, if its setting asks for one and the values it names exist.
    /// `passed` is the case data (an origination's headers, or the caller's).
    pub(super) fn uui_header(
        &self,
        call: &CallId,
        target: &Target,
        passed: &[(String, String)],
    ) -> Option<(String, String)> {
        let template = self
            .settings
            .user_to_user(target.profile, target.peer)?
            .template()?;
        let interaction = self.table.call(call).and_then(|c| c.interaction.as_deref());
        let case = passed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("X-Case-Id"))
            .map(|(_, v)| v.as_str())
            .or(interaction);
        let value = UserToUser::expand(template, case, interaction, &call.0)?;
        Some((UUI.to_string(), value))
    }

    /// Whether a received header named `name` may be copied onto the leg
    /// toward `target` (beyond the profile's pass list): identity headers
    /// never; User-to-User not when the target's setting is off or the
    /// switch writes its own.
    pub(super) fn may_pass(&self, target: &Target, name: &str) -> bool {
        if is_identity_header(name) {
            return false;
        }
        if name.eq_ignore_ascii_case(UUI) {
            return self
                .settings
                .user_to_user(target.profile, target.peer)
                .is_none();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::call::settings::UserToUser;

    #[test]
    fn templates_expand_and_check() {
        assert_eq!(
            UserToUser::expand(UserToUser::DEFAULT_TEMPLATE, Some("42"), None, "c1").as_deref(),
            Some("3432;encoding=hex")
        );
        assert_eq!(
            UserToUser::expand("{case};purpose=x;call={call}", Some("A-7"), None, "c1").as_deref(),
            Some("A-7;purpose=x;call=c1")
        );
        assert_eq!(UserToUser::expand("{case_hex}", None, None, "c1"), None);
        assert_eq!(
            UserToUser::expand("{interaction}", None, Some("cb-1"), "c1").as_deref(),
            Some("cb-1")
        );
        assert!(UserToUser::check("{case_hex};encoding=hex").is_ok());
        assert!(UserToUser::check("{nope}")
            .unwrap_err()
            .to_string()
            .contains("unknown placeholder {nope}"));
        assert!(UserToUser::check("x\r\ny").is_err());
        assert!(UserToUser::check("{case").is_err());
        assert_eq!(UserToUser::Enabled(false).template(), None);
    }
}
