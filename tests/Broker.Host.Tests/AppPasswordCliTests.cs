using System.Text.RegularExpressions;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>Flags whose values hold a colon (IPv6 networks, names), through the real executable.</summary>
public sealed class AppPasswordCliTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static readonly string Pepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    private readonly string _user = $"cli-{Guid.NewGuid():N}@example.com";

    private string[] Store => [$"--Redis:Configuration={redis.Server.Configuration}", $"--Broker:Pepper:Value={Pepper}"];

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
}
