using System.Text.RegularExpressions;
using Broker.MailServers.Tests.Infrastructure;
using Broker.Validation.Dovecot;
using Broker.Validation.Nginx;

namespace Broker.MailServers.Tests;

/// <summary>
/// A secret copied from infra/ unchanged must not pass for a secret: Broker refuses to start with a
/// CHANGE-ME placeholder (or a short word) where Dovecot or the backend would accept it for every mailbox.
/// </summary>
public sealed partial class ShippedPlaceholderTests
{
    [Fact]
    public void DoveadmApiKey_PlaceholderOrShortWord_RefusedAtStart()
    {
        var validator = new DoveadmOptionsValidator();
        foreach (var key in new[] { "CHANGE-ME-doveadm-api-key", "change-me-0123456789abcdef", "secret" })
        {
            var result = validator.Validate(null, new DoveadmOptions { Url = "http://127.0.0.1:8080", ApiKey = key });
            Assert.True(result.Failed, key);
            Assert.Contains("Broker:Dovecot:Doveadm:ApiKey is a placeholder", result.FailureMessage, StringComparison.Ordinal);
        }

        Assert.True(validator.Validate(null, new DoveadmOptions { Url = "http://127.0.0.1:8080", ApiKey = "3f9a0c1d2e4b5a6978d0c1b2a3f4e5d6" }).Succeeded);
        // Off (no Url): nothing to check.
        Assert.True(validator.Validate(null, new DoveadmOptions()).Succeeded);
    }

    [Fact]
    public void NginxBackendPassword_ShippedPlaceholder_RefusedAtStart()
    {
        // The placeholder exactly as infra/nginx/backend-dovecot.conf ships it.
        var shipped = Placeholder().Match(File.ReadAllText(InfraFiles.PathOf("infra/nginx/backend-dovecot.conf"))).Value;
        Assert.StartsWith("CHANGE-ME", shipped, StringComparison.Ordinal);

        var result = new NginxAuthOptionsValidator().Validate(null, new NginxAuthOptions { BackendPassword = shipped });

        Assert.True(result.Failed);
        Assert.Contains("BackendPassword is the CHANGE-ME placeholder", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new NginxAuthOptionsValidator().Validate(null, new NginxAuthOptions { BackendPassword = "9c1e5f0a7b3d2e4f" }).Succeeded);
    }

    [Theory]
    [InlineData("infra/dovecot/conf.d/92-broker-doveadm.conf")]
    [InlineData("infra/dovecot-2.4/conf.d/92-broker-doveadm.conf")]
    public void DoveadmDropIn_HasNoInlineKeyToForget(string dropIn)
    {
        // The key comes from a file that does not ship: Dovecot (2.3 and 2.4) will not start without
        // it, so no placeholder key can be left listening.
        var text = File.ReadAllText(InfraFiles.PathOf(dropIn));

        Assert.Matches(@"(?m)^doveadm_api_key = </etc/dovecot/doveadm-api-key$", text);
        Assert.DoesNotContain("CHANGE-ME", text, StringComparison.Ordinal);
    }

    [GeneratedRegex("CHANGE-ME[A-Za-z-]*")]
    private static partial Regex Placeholder();
}
