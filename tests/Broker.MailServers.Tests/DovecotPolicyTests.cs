using System.Net;
using Broker.MailServers.Tests.Infrastructure;

namespace Broker.MailServers.Tests;

/// <summary>Real Dovecot with the shipped auth-policy config (infra/dovecot/conf.d/91-broker-policy.conf) asking Broker before each login.</summary>
[Collection(MailLabDefinition.Name)]
public sealed class DovecotPolicyTests(MailLab lab)
{
    [Fact]
    public async Task Login_SourceOverFailureThreshold_RejectedWithBrokerMessage()
    {
        // A source address of its own, so no other test's failures count against it.
        var sprayer = IPAddress.Parse("127.0.0.77");
        var secret = await lab.IssueAsync("policy-victim@example.com");
        var port = lab.PolicyDovecot.ImapPort;

        for (var i = 0; i < MailLab.PolicyThreshold; i++)
        {
            Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, "login", $"sprayed{i}@example.com", "Password1!", sprayer), StringComparison.Ordinal);
        }

        // Over the threshold: refused before the password is checked, even the right one, with Broker's message.
        var refused = await DovecotLuaPassdbTests.LoginAsync(port, "login", "policy-victim@example.com", secret, sprayer);
        Assert.StartsWith("NO [ALERT] Too many failed logins from your address", refused, StringComparison.Ordinal);

        // Another source is unaffected.
        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(port, "login", "policy-victim@example.com", secret, IPAddress.Parse("127.0.0.78")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_FewFailures_ThenCorrectPasswordWorks()
    {
        var source = IPAddress.Parse("127.0.0.79");
        var secret = await lab.IssueAsync("policy-typo@example.com");
        var port = lab.PolicyDovecot.ImapPort;

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, "plain", "policy-typo@example.com", "typo", source), StringComparison.Ordinal);

        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(port, "plain", "policy-typo@example.com", secret, source), StringComparison.Ordinal);
    }
}
