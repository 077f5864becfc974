using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Host.Tests;

/// <summary>The CLI against a disabled user, through the real executable: refused with a clear message and a non-zero exit.</summary>
public sealed class DisabledUserCliTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private readonly string _user = $"cli-{Guid.NewGuid():N}@example.com";

    private readonly CliStore _store = new(redis);

    private string[] Store => _store.Args;

    [Fact]
    public async Task IssueRenewAndApproveNetwork_ForADisabledUser_AreRefusedWithAClearMessage()
    {
        await using var services = _store.InProcess();
        var store = services.GetRequiredService<AppPasswordService>();
        var issued = await store.IssueAsync(_user, "Outlook", ["imap"], null);
        await store.SetDisabledAsync(_user, true);

        var issue = await BrokerProcess.RunAsync([.. Store, "app-password", "issue", "--user", _user, "--name", "Outlook", "--scopes", "imap"]);
        var renew = await BrokerProcess.RunAsync([.. Store, "app-password", "renew", "--user", _user, "--id", issued.AppPassword.Id]);
        var approve = await BrokerProcess.RunAsync([.. Store, "app-password", "approve-network", "--user", _user, "--id", issued.AppPassword.Id, "--network", "192.0.2.0/24"]);

        Assert.Equal(1, issue.ExitCode);
        Assert.Contains("This account is disabled: no app password can be issued or renewed", issue.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("password:", issue.Output, StringComparison.Ordinal);
        Assert.Equal(1, renew.ExitCode);
        Assert.Contains("This account is disabled", renew.Output, StringComparison.Ordinal);
        Assert.Equal(1, approve.ExitCode);
        Assert.Contains($"{_user} is disabled: nothing was approved", approve.Output, StringComparison.Ordinal);
        Assert.Equal(["Outlook"], (await store.ListAsync(_user)).Select(a => a.Name));
    }

    [Fact]
    public async Task Disable_SaysHowManyWereRevoked_AndWarnsAboutANameWithNothing()
    {
        using var data = new TempDirectory();
        string[] store = [.. Store, $"--Broker:DataDirectory={data.Path}"];
        await using var services = _store.InProcess();
        await services.GetRequiredService<AppPasswordService>().IssueAsync(_user, "Outlook", ["imap"], null);
        var typo = "x" + _user;

        var real = await BrokerProcess.RunAsync([.. store, "user", "disable", _user]);
        var mistyped = await BrokerProcess.RunAsync([.. store, "user", "disable", typo]);

        Assert.True(real.ExitCode == 0, real.Output);
        Assert.Contains($"disabled {_user} for mail login and revoked 1 app password(s)", real.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("warning:", real.Output, StringComparison.Ordinal);
        // A mistyped name was disabled as readily, with the same words: the real user kept their access unnoticed.
        Assert.True(mistyped.ExitCode == 0, mistyped.Output);
        Assert.Contains($"disabled {typo} for mail login and revoked 0 app password(s)", mistyped.Output, StringComparison.Ordinal);
        Assert.Contains($"warning: '{typo}' had no app passwords and no portal database was found: is the name right?", mistyped.Output, StringComparison.Ordinal);
        // The data directory holds no portal database, and the command line made none there.
        Assert.Contains($"no portal database at {Path.Combine(data.Path, "portal.db")} (Broker:DataDirectory): no portal account was changed", real.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(data.Path, "portal.db")));
    }
}

/// <summary>A data directory of its own (portal database), deleted afterwards.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("broker-cli-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
