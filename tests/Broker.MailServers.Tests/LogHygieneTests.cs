using Broker.MailServers.Tests.Infrastructure;
using Broker.Testing;

namespace Broker.MailServers.Tests;

/// <summary>Broker's logs name users and reasons, never an app password, caller key or backend secret.</summary>
[Collection(MailLabDefinition.Name)]
public sealed class LogHygieneTests(MailLab lab)
{
    [Fact]
    public async Task LoginsThroughEveryIntegration_LogsHoldNoSecrets()
    {
        var secret = await lab.IssueAsync("logs@example.com");
        var typo = secret[..^1] + (secret[^1] == 'a' ? 'b' : 'a');
        foreach (var port in new[] { lab.Dovecot.ImapPort, lab.OAuth2Dovecot.ImapPort, lab.PolicyDovecot.ImapPort })
        {
            Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(port, "login", "logs@example.com", secret), StringComparison.Ordinal);
            Assert.StartsWith("NO", await DovecotLuaPassdbTests.LoginAsync(port, "plain", "logs@example.com", typo), StringComparison.Ordinal);
        }

        Assert.StartsWith("OK", await lab.Nginx.LoginAsync("login", "logs@example.com", secret), StringComparison.Ordinal);
        Assert.StartsWith("NO", await lab.Nginx.LoginAsync("plain", "logs@example.com", typo), StringComparison.Ordinal);

        var issued = await lab.AppPasswords.IssueAsync("logs@example.com", "kicked", ["imap"], null);
        await lab.AppPasswords.RevokeAsync("logs@example.com", issued.AppPassword.Id);

        var lines = lab.Broker.Logs.Lines.ToArray();
        Assert.Contains(lines, l => l.Contains("logs@example.com", StringComparison.Ordinal));
        foreach (var forbidden in new[] { secret, secret.Replace("-", string.Empty, StringComparison.Ordinal), typo, issued.Secret, BrokerApps.CallerKey, MailLab.BackendSecret, lab.DoveadmKey, Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(lab.DoveadmKey)) })
        {
            Assert.DoesNotContain(lines, l => l.Contains(forbidden, StringComparison.OrdinalIgnoreCase));
        }
    }
}
