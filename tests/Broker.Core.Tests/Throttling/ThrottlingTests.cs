using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Core.Tests.Throttling;

/// <summary>Throttling against a real redis-server, with time driven by a fake clock (default limits).</summary>
public sealed class ThrottlingTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    private static string Net() => $"10.{Random.Shared.Next(256)}.{Random.Shared.Next(256)}";

    private static ValidationContext From(string network, int host = 5) => new("imap", $"{network}.{host}", null);

    private async Task FailAsync(string user, string network, int times)
    {
        for (var i = 0; i < times; i++)
        {
            var outcome = await Store.ValidateAsync(user, AppPasswordFormat.Generate(), From(network, i % 250));
            Assert.Equal(ValidationResult.Denied, outcome.Result);
        }
    }

    [Fact]
    public async Task UserAndNetwork_OverTheLimit_DeniesEvenTheRightPassword_OnlyFromThatNetwork()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        string attacker = Net(), home = Net();

        await FailAsync(User, attacker, 10);

        Assert.Equal(DenyReason.Throttled, (await Store.ValidateAsync(User, issued.Secret, From(attacker))).Reason);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);
    }

    [Fact]
    public async Task DistributedGuessing_ThrottlesUnknownNetworks_ButTheUsersKnownNetworkKeepsWorking()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        var home = Net();
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);

        // 30 failures spread over many networks (below each network's own limits).
        for (var i = 0; i < 6; i++)
        {
            await FailAsync(User, Net(), 5);
        }

        Assert.Equal(DenyReason.Throttled, (await Store.ValidateAsync(User, issued.Secret, From(Net()))).Reason);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home, 99))).Result);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task KnownNetwork_StaysKnownWhileUsed_AndLapsesAfterItsLifetimeWithoutUse(bool usedBeforeItLapses)
    {
        // Default lifetime: 30 days. The mark is refreshed at most once a minute, so a use one minute
        // before it lapses must still carry it forward.
        var issued = await Store.IssueAsync(User, "A", ["imap"], TimeSpan.FromDays(60));
        var home = Net();
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);
        Time.Advance(TimeSpan.FromDays(30) - TimeSpan.FromMinutes(1));
        if (usedBeforeItLapses)
        {
            Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);
        }

        Time.Advance(TimeSpan.FromMinutes(2));
        for (var i = 0; i < 6; i++)
        {
            await FailAsync(User, Net(), 5);
        }

        var fromHome = await Store.ValidateAsync(User, issued.Secret, From(home, 99));
        Assert.Equal(usedBeforeItLapses ? ValidationResult.Allowed : ValidationResult.Denied, fromHome.Result);
        Assert.Equal(usedBeforeItLapses ? null : DenyReason.Throttled, fromHome.Reason);
    }

    [Fact]
    public async Task Spraying_OneSourceManyUsers_ThrottlesTheSource_ExceptWhereItIsAKnownNetwork()
    {
        var sprayer = Net();
        var victim = $"victim-{Guid.NewGuid():N}";
        var colleague = $"colleague-{Guid.NewGuid():N}";
        var victimPassword = await Store.IssueAsync(victim, "A", ["imap"], null);
        var colleaguePassword = await Store.IssueAsync(colleague, "A", ["imap"], null);
        // The colleague works from the same network the sprayer uses (a shared NAT).
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(colleague, colleaguePassword.Secret, From(sprayer, 1))).Result);

        await SprayAsync(sprayer);
        Assert.Equal(DenyReason.Throttled, (await Store.ValidateAsync(victim, victimPassword.Secret, From(sprayer, 7))).Reason);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(colleague, colleaguePassword.Secret, From(sprayer, 1))).Result);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(victim, victimPassword.Secret, From(Net()))).Result);
    }

    [Fact]
    public async Task ThrottledNetwork_ForAUserWhoseKnownGoodNetworkItIs_IsNotThrottled()
    {
        var sprayer = Net();
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(sprayer, 1))).Result);
        await SprayAsync(sprayer);

        Assert.True(await Store.IsNetworkThrottledAsync($"{sprayer}.200", $"stranger-{Guid.NewGuid():N}"));
        Assert.True(await Store.IsNetworkThrottledAsync($"{sprayer}.200", "\0bad\0"));
        Assert.False(await Store.IsNetworkThrottledAsync($"{sprayer}.9", $"  {User.ToUpperInvariant()} "));

        // Known-good lapses after its lifetime without use (default 30 days); so does the exemption.
        Time.Advance(TimeSpan.FromDays(30) + TimeSpan.FromMinutes(1));
        await SprayAsync(sprayer);

        Assert.True(await Store.IsNetworkThrottledAsync($"{sprayer}.9", User));
    }

    /// <summary>Wrong passwords for many users from one network, until the network is throttled.</summary>
    private async Task SprayAsync(string network, int failures = 50)
    {
        for (var u = 0; u < failures; u++)
        {
            await Store.ValidateAsync($"user{u}-{Guid.NewGuid():N}", "Summer2024!", From(network, 200));
        }

        // Fire-and-forget counters: wait until the source is seen as throttled.
        for (var i = 0; i < 50 && !await Store.IsNetworkThrottledAsync($"{network}.200"); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(await Store.IsNetworkThrottledAsync($"{network}.200"));
    }

    [Fact]
    public async Task RightSecret_FromAThrottledNetwork_RecordsNothing_AndItsFirstUseIsReportedOnceTheThrottleLifts()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        string home = Net(), sprayer = Net();
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);
        await SprayAsync(sprayer);

        var first = await Store.ValidateAsync(User, issued.Secret, From(sprayer, 7));
        var again = await Store.ValidateAsync(User, issued.Secret, From(sprayer, 7));

        Assert.Equal(DenyReason.Throttled, first.Reason);
        // Nothing made the network known-good for the user: the second attempt is refused too.
        Assert.Equal(DenyReason.Throttled, again.Reason);
        var listed = Assert.Single(await Store.ListAsync(User));
        Assert.Equal([$"{home}.0/24"], listed.Networks);
        Assert.Equal($"{home}.5", listed.LastUsed?.RemoteIp);

        Time.Advance(TimeSpan.FromMinutes(31));
        var later = await Store.ValidateAsync(User, issued.Secret, From(sprayer, 7));

        Assert.Equal(ValidationResult.Allowed, later.Result);
        Assert.True(later.FirstUseFromNetwork);
    }

    [Fact]
    public async Task RightSecret_FromAThrottledNetwork_WithApprovalOn_IsAskedForOnlyOnceTheThrottleLifts()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        string home = Net(), sprayer = Net();
        var issued = await Store.IssueAsync(User, "A", ["imap"], null, approvedFromIp: $"{home}.1");
        await SprayAsync(sprayer);

        Assert.Equal(DenyReason.Throttled, (await Store.ValidateAsync(User, issued.Secret, From(sprayer, 7))).Reason);
        Assert.Empty(Assert.Single(await Store.ListAsync(User)).PendingNetworks);

        Time.Advance(TimeSpan.FromMinutes(31));
        var later = await Store.ValidateAsync(User, issued.Secret, From(sprayer, 7));

        Assert.Equal(ValidationResult.ApprovalRequired, later.Result);
        Assert.True(later.FirstUseFromNetwork);
    }

    [Fact]
    public async Task SourceThrottling_FadesWithTheSlidingWindow()
    {
        // Start on a window boundary, so how much of the previous window still counts is known.
        var window = TimeSpan.FromMinutes(15);
        Time.Advance(window - TimeSpan.FromTicks(Time.GetUtcNow().ToUnixTimeMilliseconds() % (long)window.TotalMilliseconds * TimeSpan.TicksPerMillisecond));
        var sprayer = Net();
        await SprayAsync(sprayer, 80);

        // A quarter into the next window, 3/4 of the 80 failures still count: 60, over the limit of 50.
        Time.Advance(window + (window / 4));
        Assert.True(await Store.IsNetworkThrottledAsync($"{sprayer}.1"));

        // Half-way: 40, under it.
        Time.Advance(window / 4);
        Assert.False(await Store.IsNetworkThrottledAsync($"{sprayer}.1"));
    }

    [Fact]
    public async Task CorruptSourceCounter_IsATemporaryFailure_NeverADecision()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        var network = Net();
        var keys = Services.GetRequiredService<Broker.Core.Redis.RedisKeys>();
        var bucket = Time.GetUtcNow().ToUnixTimeMilliseconds() / (long)TimeSpan.FromMinutes(15).TotalMilliseconds;
        await Redis.GetDatabase().StringSetAsync(keys.NetworkFailures($"{network}.0/24", bucket), "not a number", TimeSpan.FromMinutes(5));

        Assert.Equal(ValidationResult.Unavailable, (await Store.ValidateAsync(User, issued.Secret, From(network))).Result);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => Store.IsNetworkThrottledAsync($"{network}.1"));
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(Net()))).Result);
    }

    [Fact]
    public async Task Throttling_EndsWhenTheWindowHasSlidPast()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        var attacker = Net();
        await FailAsync(User, attacker, 10);
        Assert.Equal(DenyReason.Throttled, (await Store.ValidateAsync(User, issued.Secret, From(attacker))).Reason);

        Time.Advance(TimeSpan.FromMinutes(31));

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(attacker))).Result);
    }

    [Fact]
    public async Task MalformedPasswords_CountAsFailures()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        var attacker = Net();

        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(DenyReason.Malformed, (await Store.ValidateAsync(User, "Password" + i, From(attacker))).Reason);
        }

        DenyReason? reason = null;
        for (var i = 0; i < 50 && reason != DenyReason.Throttled; i++)
        {
            await Task.Delay(20);
            reason = (await Store.ValidateAsync(User, issued.Secret, From(attacker))).Reason;
        }

        Assert.Equal(DenyReason.Throttled, reason);
    }

    [Fact]
    public async Task Success_ResetsTheUserAndNetworkCounter()
    {
        var issued = await Store.IssueAsync(User, "A", ["imap"], null);
        var home = Net();

        await FailAsync(User, home, 9);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);
        await FailAsync(User, home, 9);

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, From(home))).Result);
    }
}
