using Broker.Core.AppPasswords;
using Broker.Core.Redis;
using Broker.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>Admin overrides of the app-password policy against a real redis-server.</summary>
public sealed class PolicyStoreTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    private PolicyStore Policy => Services.GetRequiredService<PolicyStore>();

    private static PolicySettings Settings(string[]? scopes = null, string factor = FactorKinds.Any, TimeSpan? min = null, TimeSpan? def = null, TimeSpan? max = null) =>
        new(def ?? TimeSpan.FromDays(7), min ?? TimeSpan.FromHours(1), max ?? TimeSpan.FromDays(14), scopes ?? ["imap", "submission"], false, factor);

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        // The policy key is global; tests of this class share one server and run one after another.
        await Redis.GetDatabase().KeyDeleteAsync(new RedisKeys("broker").Policy);
        await Policy.RefreshAsync();
    }

    [Fact]
    public async Task SetAsync_NewLifetimes_ApplyToTheNextIssue()
    {
        var before = await Store.IssueAsync(User, "Before", ["imap"], TimeSpan.FromDays(30));

        var effective = await Policy.SetAsync(Settings(), "root");

        Assert.True(effective.Overridden);
        Assert.Equal("root", effective.ChangedBy);
        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "Long", ["imap"], TimeSpan.FromDays(30)));
        Assert.Contains("between", ex.Message, StringComparison.Ordinal);
        var issued = await Store.IssueAsync(User, "Default", ["imap"], null);
        Assert.Equal(TimeSpan.FromDays(7), issued.AppPassword.Expires - issued.AppPassword.Created);
        Assert.Equal(TimeSpan.FromDays(30), before.AppPassword.Expires - before.AppPassword.Created);
    }

    [Fact]
    public async Task IssueAsync_ScopeThePolicyDoesNotAllow_IsRefused()
    {
        await Policy.SetAsync(Settings(scopes: ["imap"]), "root");

        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "Phone", ["imap", "smtp"], null));

        Assert.Contains("does not allow", ex.Message, StringComparison.Ordinal);
        Assert.Contains("submission", ex.Message, StringComparison.Ordinal);
        Assert.Empty(await Store.ListAsync(User));
        Assert.Equal(["imap"], (await Store.IssueAsync(User, "Phone", ["imap"], null)).AppPassword.Scopes);
    }

    [Fact]
    public async Task RenewAsync_AppPasswordWithAProtocolThePolicyNoLongerAllows_IsRefused()
    {
        var both = await Store.IssueAsync(User, "Old phone", ["imap", "pop3"], TimeSpan.FromDays(7));
        var imapOnly = await Store.IssueAsync(User, "Laptop", ["imap"], TimeSpan.FromDays(7));

        await Policy.SetAsync(Settings(scopes: ["imap", "submission"]), "root");

        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.RenewAsync(User, both.AppPassword.Id, null));
        Assert.Contains("'pop3'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("no longer allows", ex.Message, StringComparison.Ordinal);
        Assert.Equal(both.AppPassword.Expires, (await Store.GetAsync(User, both.AppPassword.Id))!.Expires, TimeSpan.FromMilliseconds(1));
        Time.Advance(TimeSpan.FromDays(1));
        var renewed = await Store.RenewAsync(User, imapOnly.AppPassword.Id, null);
        Assert.Equal(Time.GetUtcNow() + TimeSpan.FromDays(7), renewed.Expires, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task RenewAsync_WithoutALifetime_KeepsItsOwnWithinTodaysLimits()
    {
        var year = await Store.IssueAsync(User, "Desktop", ["imap"], TimeSpan.FromDays(300));
        var hour = await Store.IssueAsync(User, "Kiosk", ["imap"], TimeSpan.FromHours(1));

        await Policy.SetAsync(Settings(min: TimeSpan.FromHours(2), def: TimeSpan.FromDays(7), max: TimeSpan.FromDays(90)), "root");

        // Renewing never goes past today's maximum, nor below today's minimum.
        Assert.Equal(Time.GetUtcNow() + TimeSpan.FromDays(90), (await Store.RenewAsync(User, year.AppPassword.Id, null)).Expires, TimeSpan.FromMilliseconds(1));
        Assert.Equal(Time.GetUtcNow() + TimeSpan.FromHours(2), (await Store.RenewAsync(User, hour.AppPassword.Id, null)).Expires, TimeSpan.FromMilliseconds(1));
    }

    [Theory]
    [InlineData(0.5, 1, 2, "at least 1 minute")]
    [InlineData(60, 30, 120, "default lifetime")]
    [InlineData(60, 60, 30, "maximum lifetime")]
    public async Task SetAsync_BadLifetimes_AreRefusedWithAMessage(double minMinutes, double defMinutes, double maxMinutes, string expected)
    {
        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Policy.SetAsync(
            Settings(min: TimeSpan.FromMinutes(minMinutes), def: TimeSpan.FromMinutes(defMinutes), max: TimeSpan.FromMinutes(maxMinutes)), "root"));

        Assert.Contains(expected, ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(Policy.Current.Overridden);
        Assert.False(await Redis.GetDatabase().KeyExistsAsync(new RedisKeys("broker").Policy));
    }

    [Theory]
    [InlineData(1, 30, 10675199)]
    [InlineData(1, 3651, 3651)]
    [InlineData(3651, 3651, 3651)]
    public async Task SetAsync_LifetimeBeyondTenYears_IsRefusedWithTheFormsMessage(int minDays, int defDays, int maxDays)
    {
        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Policy.SetAsync(
            Settings(min: TimeSpan.FromDays(minDays), def: TimeSpan.FromDays(defDays), max: TimeSpan.FromDays(maxDays)), "root"));

        Assert.Contains("A lifetime can be at most 3650 days (10 years).", ex.Message, StringComparison.Ordinal);
        Assert.False(Policy.Current.Overridden);
        Assert.False(await Redis.GetDatabase().KeyExistsAsync(new RedisKeys("broker").Policy));
    }

    [Fact]
    public async Task SetAsync_TenYears_IsAcceptedAndIssues()
    {
        await Policy.SetAsync(Settings(max: TimeSpan.FromDays(3650)), "root");

        var issued = await Store.IssueAsync(User, "Long", ["imap"], TimeSpan.FromDays(3650));

        Assert.Equal(TimeSpan.FromDays(3650), issued.AppPassword.Expires - issued.AppPassword.Created);
    }

    [Theory]
    [InlineData("922337203685477")]
    [InlineData("922337203685478")]
    [InlineData("9223372036854775807")]
    public async Task RefreshAsync_MaximumBeyondTenYearsWrittenByHand_KeepsThePreviousPolicy(string maximumMs)
    {
        await Policy.SetAsync(Settings(), "root");
        // Not through SetAsync: another tool writing the hash directly.
        await Redis.GetDatabase().HashSetAsync(new RedisKeys("broker").Policy, "max", maximumMs);

        await Policy.RefreshAsync();

        Assert.Equal(TimeSpan.FromDays(14), Policy.Current.MaximumLifetime);
        var issued = await Store.IssueAsync(User, "Phone", ["imap"], null);
        Assert.Equal(TimeSpan.FromDays(7), issued.AppPassword.Expires - issued.AppPassword.Created);
    }

    [Fact]
    public async Task SetAsync_NoScopeOrUnknownScopeOrFactor_IsRefusedWithAMessage()
    {
        Assert.Contains("at least one protocol", (await Assert.ThrowsAsync<AppPasswordException>(() => Policy.SetAsync(Settings(scopes: []), "root"))).Message, StringComparison.Ordinal);
        Assert.Contains("Unknown scope", (await Assert.ThrowsAsync<AppPasswordException>(() => Policy.SetAsync(Settings(scopes: ["ftp"]), "root"))).Message, StringComparison.Ordinal);
        Assert.Contains("required factor", (await Assert.ThrowsAsync<AppPasswordException>(() => Policy.SetAsync(Settings(factor: "sms"), "root"))).Message, StringComparison.Ordinal);
        Assert.False(Policy.Current.Overridden);
    }

    [Fact]
    public async Task ResetAsync_ReturnsToConfiguration()
    {
        await Policy.SetAsync(Settings(factor: FactorKinds.Passkey), "root");
        Assert.Equal(FactorKinds.Passkey, Policy.Current.RequiredFactor);

        var effective = await Policy.ResetAsync("root");

        Assert.False(effective.Overridden);
        Assert.Null(effective.RequiredFactor);
        Assert.Equal(TimeSpan.FromDays(30), effective.DefaultLifetime);
        Assert.Equal(AppPasswordScopes.All, effective.AllowedScopes);
    }

    [Fact]
    public async Task OverrideWrittenByAnotherInstance_IsPickedUpOnRefresh()
    {
        await using var other = await CoreServices.StartAsync(RedisConfiguration);
        await other.Services.GetRequiredService<PolicyStore>().SetAsync(Settings(scopes: ["pop3"]), "root");

        await Policy.RefreshAsync();

        Assert.Equal(["pop3"], Policy.Current.AllowedScopes);
    }

    [Fact]
    public async Task IssueAsync_InAProcessWithoutBackgroundRefresh_StillAppliesTheOverrides()
    {
        await Policy.SetAsync(Settings(scopes: ["imap"]), "root");
        // Like the CLI: a fresh process whose policy was never refreshed.
        await using var cli = await CoreServices.StartAsync(RedisConfiguration);

        var store = cli.Services.GetRequiredService<AppPasswordService>();

        await Assert.ThrowsAsync<AppPasswordException>(() => store.IssueAsync(User, "Phone", ["pop3"], null));
        await Assert.ThrowsAsync<AppPasswordException>(() => store.IssueAsync(User, "Phone", ["imap"], TimeSpan.FromDays(30)));
    }

    [Fact]
    public async Task RefreshAsync_WhenRedisIsDown_KeepsTheLastGoodPolicy()
    {
        var server = await RedisServer.StartAsync();
        await using var core = await CoreServices.StartAsync(server.Configuration);
        var policy = core.Services.GetRequiredService<PolicyStore>();
        await policy.SetAsync(Settings(scopes: ["imap"], factor: FactorKinds.Passkey), "root");

        await server.DisposeAsync();
        await policy.RefreshAsync();

        Assert.True(policy.Current.Overridden);
        Assert.Equal(["imap"], policy.Current.AllowedScopes);
        Assert.Equal(FactorKinds.Passkey, policy.Current.RequiredFactor);
        Assert.Equal(TimeSpan.FromDays(14), policy.Current.MaximumLifetime);
    }

    [Fact]
    public async Task ValidateAsync_InAValidatorThatHasNotReadTheOverridesYet_StillHoldsNewNetworksForApproval()
    {
        // The organisation default is off in configuration and on by the admin's override.
        await Policy.SetAsync(Settings() with { RequireApprovalForNewNetworks = true }, "root");
        var pepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await using var portal = await CoreServices.StartAsync(RedisConfiguration, pepper);
        var issued = await portal.Services.GetRequiredService<AppPasswordService>().IssueAsync(User, "Laptop", ["imap"], null, approvedFromIp: "10.1.1.5");
        // A validator whose background refresh has not read the overrides yet (it started while the store was down).
        await using var validator = await CoreServices.StartAsync(RedisConfiguration, pepper);
        var store = validator.Services.GetRequiredService<AppPasswordService>();

        var outcome = await store.ValidateAsync(User, issued.Secret, new ValidationContext("imap", "10.2.2.2", null));

        Assert.Equal(ValidationResult.ApprovalRequired, outcome.Result);
        Assert.DoesNotContain("10.2.2.0/24", Assert.Single(await store.ListAsync(User)).Networks);
    }

    [Fact]
    public async Task ValidateAsync_OverridesNeverReadAndTheStoreDown_IsATemporaryFailure()
    {
        var server = await RedisServer.StartAsync();
        await using var validator = await CoreServices.StartAsync(server.Configuration);
        var store = validator.Services.GetRequiredService<AppPasswordService>();
        await server.DisposeAsync();

        var outcome = await store.ValidateAsync(User, AppPasswordFormat.Generate(), new ValidationContext("imap", "10.2.2.2", null));

        Assert.Equal(ValidationResult.Unavailable, outcome.Result);
    }

    /// <summary>A second set of core services (another instance) on a given Redis.</summary>
    private sealed class CoreServices(ServiceProvider services) : IAsyncDisposable
    {
        public IServiceProvider Services => services;

        public static Task<CoreServices> StartAsync(string redisConfiguration, string? pepper = null)
        {
            var config = new ConfigurationBuilder().AddInMemoryCollection(BrokerApps.BaseConfig(redisConfiguration, pepper)).Build();
            var collection = new ServiceCollection();
            collection.AddSingleton<IConfiguration>(config);
            collection.AddLogging();
            collection.AddBrokerCore();
            return Task.FromResult(new CoreServices(collection.BuildServiceProvider()));
        }

        public ValueTask DisposeAsync() => services.DisposeAsync();
    }
}
