using System.Text.RegularExpressions;
using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Host.Tests;

/// <summary>App-password commands through the real executable: flag values, output, network approval.</summary>
public sealed class AppPasswordCliTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private readonly string _user = $"cli-{Guid.NewGuid():N}@example.com";

    private readonly CliStore _store = new(redis);

    private string[] Store => _store.Args;

    [Fact]
    public async Task FlagValuesWithAColon_AreFlags_NotSettings()
    {
        var (code, issued) = await BrokerProcess.RunAsync([.. Store, "app-password", "issue", $"--user={_user}", "--name=Work: laptop", "--scopes=imap"]);
        Assert.True(code == 0, issued);
        var id = Regex.Match(issued, "id: +([0-9a-f]+)").Groups[1].Value;

        // Taken for a --Section:Key setting, this flag went missing and the limit was lifted instead.
        var (setCode, set) = await BrokerProcess.RunAsync([.. Store, "app-password", "allow-networks", "--user", _user, "--id", id, "--networks=2001:db8::/32,10.0.0.0/8"]);
        Assert.True(setCode == 0, set);
        Assert.Contains($"{id} may be used only from", set, StringComparison.Ordinal);
        Assert.Contains("2001:db8::/32", set, StringComparison.Ordinal);

        var (_, list) = await BrokerProcess.RunAsync([.. Store, "app-password", "list", "--user", _user]);
        Assert.Contains("Work: laptop", list, StringComparison.Ordinal);
        Assert.Contains("2001:db8::/32", list, StringComparison.Ordinal);

        var (clearCode, cleared) = await BrokerProcess.RunAsync([.. Store, "app-password", "allow-networks", "--user", _user, "--id", id, "--networks="]);
        Assert.True(clearCode == 0, cleared);
        Assert.Contains($"{id} may be used from anywhere", cleared, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PepperStatus_CountsWhatIsLeftUnderTheOtherPepper_AndSaysWhetherItCanGo()
    {
        var prefix = $"pep-{Guid.NewGuid():N}"[..20];
        var store = new CliStore(redis, new Dictionary<string, string?> { ["Redis:KeyPrefix"] = prefix });
        await using var services = store.InProcess();
        var issued = await services.GetRequiredService<AppPasswordService>().IssueAsync(_user, "Phone", ["imap"], null);
        var oldPepper = store.Args.Single(a => a.StartsWith("--Broker:Pepper:Value=", StringComparison.Ordinal))["--Broker:Pepper:Value=".Length..];
        var newPepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        string[] rotating = [$"--Redis:Configuration={redis.Server.Configuration}", $"--Redis:KeyPrefix={prefix}", $"--Broker:Pepper:Value={newPepper}", $"--Broker:Pepper:RotationValue={oldPepper}"];

        var (code, output) = await BrokerProcess.RunAsync([.. rotating, "pepper", "status"]);

        Assert.True(code == 0, output);
        Assert.Contains(": 0 app password(s)", output, StringComparison.Ordinal);
        Assert.Contains("under another pepper: 1", output, StringComparison.Ordinal);
        Assert.Contains("removing Broker:Pepper:RotationFile", output, StringComparison.Ordinal);

        var (sameCode, same) = await BrokerProcess.RunAsync([.. rotating[..2], $"--Broker:Pepper:Value={oldPepper}", $"--Broker:Pepper:RotationValue={oldPepper}", "pepper", "status"]);
        Assert.Equal(3, sameCode);
        Assert.Contains("same pepper", same, StringComparison.Ordinal);

        // Its next login re-keys it; then nothing is left under the old pepper.
        var config = new ConfigurationBuilder().AddInMemoryCollection(BrokerApps.BaseConfig(redis.Server.Configuration, newPepper)).AddInMemoryCollection(new Dictionary<string, string?> { ["Redis:KeyPrefix"] = prefix, ["Broker:Pepper:RotationValue"] = oldPepper }).Build();
        var sc = new ServiceCollection();
        sc.AddSingleton<IConfiguration>(config);
        sc.AddLogging();
        sc.AddBrokerCore();
        await using var rotatingServices = sc.BuildServiceProvider();
        Assert.Equal(ValidationResult.Allowed, (await rotatingServices.GetRequiredService<AppPasswordService>().ValidateAsync(_user, issued.Secret, new ValidationContext("imap", "10.9.8.7", null))).Result);

        var (doneCode, done) = await BrokerProcess.RunAsync([.. rotating, "pepper", "status"]);
        Assert.True(doneCode == 0, done);
        Assert.Contains(": 1 app password(s)", done, StringComparison.Ordinal);
        Assert.Contains("can be removed", done, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Issue_StandardOutputIsTheAnswerOnly()
    {
        var (code, output, stdout) = await BrokerProcess.RunSeparatedAsync([.. Store, "app-password", "issue", "--user", _user, "--name", "Phone", "--scopes", "imap, smtp,"]);

        Assert.True(code == 0, output);
        // Log lines ("info: … Issued app password …") were interleaved with the secret on standard output.
        Assert.Equal(["id:", "user:", "scopes:", "expires:", "password:"], stdout.Split('\n').Select(l => l.Split(' ')[0]));
        Assert.Contains("scopes:   imap,submission", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApproveNetwork_TakesTheNetworkAsTyped_AndSaysWhatIsPending()
    {
        await using var services = _store.InProcess();
        var store = services.GetRequiredService<AppPasswordService>();
        await store.SetNewNetworkApprovalAsync(_user, true);
        var issued = await store.IssueAsync(_user, "Laptop", ["imap"], null, approvedFromIp: "10.1.1.5");
        var id = issued.AppPassword.Id;
        Assert.Equal(ValidationResult.ApprovalRequired, (await store.ValidateAsync(_user, issued.Secret, new ValidationContext("imap", "2001:db8:1::5", null))).Result);

        var wrong = await BrokerProcess.RunAsync([.. Store, "app-password", "approve-network", "--user", _user, "--id", id, "--network", "198.51.100.0/24"]);
        var unknown = await BrokerProcess.RunAsync([.. Store, "app-password", "approve-network", "--user", _user, "--id", "0000", "--network", "198.51.100.0/24"]);
        // Upper case, spaces around: the stored form is 2001:db8:1::/48, and an exact match was required.
        var typed = await BrokerProcess.RunAsync([.. Store, "app-password", "approve-network", "--user", _user, "--id", $" {id} ", "--network", " 2001:DB8:1:0::/48 "]);

        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains($"nothing pending for 198.51.100.0/24 on {id} (awaiting approval: 2001:db8:1::/48)", wrong.Output, StringComparison.Ordinal);
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains($"{_user} has no app password with id 0000", unknown.Output, StringComparison.Ordinal);
        Assert.True(typed.ExitCode == 0, typed.Output);
        Assert.Contains($"approved 2001:db8:1::/48 for {id}", typed.Output, StringComparison.Ordinal);
        Assert.Equal(ValidationResult.Allowed, (await store.ValidateAsync(_user, issued.Secret, new ValidationContext("imap", "2001:db8:1::5", null))).Result);
    }

    [Fact]
    public async Task List_ShowsControlCharactersFromMailClients_WithoutSendingThemToTheTerminal()
    {
        await using var services = _store.InProcess();
        var store = services.GetRequiredService<AppPasswordService>();
        var issued = await store.IssueAsync(_user, "Laptop", ["imap"], null);
        // The client id is what a mail client said about itself (IMAP ID), passed on by the mail server.
        Assert.Equal(ValidationResult.Allowed, (await store.ValidateAsync(_user, issued.Secret, new ValidationContext("imap", "192.0.2.7", "evil\u001b]0;owned\u0007\u001b[2J"))).Result);

        var (code, list) = await BrokerProcess.RunAsync([.. Store, "app-password", "list", "--user", _user]);

        Assert.True(code == 0, list);
        Assert.DoesNotContain('\u001b', list);
        Assert.DoesNotContain('\u0007', list);
        Assert.Contains("evil\\u001b]0;owned\\u0007\\u001b[2J", list, StringComparison.Ordinal);
    }
}
