using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Broker.Core.Tests.AppPasswords;

/// <summary>
/// The ten-year bound on app-password lifetimes, and that issuing or renewing never overflows
/// "now + lifetime", against a real redis-server.
/// </summary>
public sealed class LifetimeBoundsTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    [Fact]
    public void Validate_MaximumLifetimeBeyondTenYears_FailsNamingTheSetting()
    {
        var result = new AppPasswordPolicyValidator().Validate(null, new AppPasswordPolicyOptions { MaximumLifetime = TimeSpan.FromDays(10675199) });

        Assert.True(result.Failed);
        Assert.Contains("Broker:AppPasswords:MaximumLifetime", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("at most 3650 days (10 years)", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_MaximumLifetimeOfExactlyTenYears_Succeeds()
    {
        var result = new AppPasswordPolicyValidator().Validate(null, new AppPasswordPolicyOptions { MaximumLifetime = TimeSpan.FromDays(3650) });

        Assert.True(result.Succeeded);
        Assert.Equal(AppPasswordPolicyOptions.LongestLifetime, TimeSpan.FromDays(3650));
    }

    [Fact]
    public async Task StartUp_MaximumLifetimeBeyondTenYears_FailsNamingTheSetting()
    {
        var settings = BrokerApps.BaseConfig(RedisConfiguration);
        settings["Broker:AppPasswords:MaximumLifetime"] = "10675199.00:00:00";
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddBrokerCore();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("Broker:AppPasswords:MaximumLifetime", ex.Message, StringComparison.Ordinal);
        Assert.Contains("at most 3650 days", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CliLikeProcess_MaximumLifetimeBeyondTenYears_FailsOnFirstUseOfThePolicy()
    {
        // The CLI runs no host, so ValidateOnStart never fires: the options factory validates instead.
        var settings = BrokerApps.BaseConfig(RedisConfiguration);
        settings["Broker:AppPasswords:MaximumLifetime"] = "10675199.00:00:00";
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddLogging();
        services.AddBrokerCore();
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<AppPasswordPolicyOptions>>().Value);

        Assert.Contains("Broker:AppPasswords:MaximumLifetime", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task IssueAsync_ExpiryPastTheLastRepresentableDate_IsRefusedNotAnOverflow()
    {
        Time.SetUtcNow(DateTimeOffset.MaxValue - TimeSpan.FromDays(10));

        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "Laptop", ["imap"], TimeSpan.FromDays(30)));

        Assert.Contains("lifetime", ex.Message, StringComparison.Ordinal);
        Assert.Empty(await Store.ListAsync(User));
    }

    [Fact]
    public async Task RenewAsync_ExpiryPastTheLastRepresentableDate_IsRefusedNotAnOverflow()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], TimeSpan.FromDays(30));
        Time.SetUtcNow(DateTimeOffset.MaxValue - TimeSpan.FromDays(10));

        var ex = await Assert.ThrowsAsync<AppPasswordException>(() => Store.RenewAsync(User, issued.AppPassword.Id, null));

        Assert.Contains("lifetime", ex.Message, StringComparison.Ordinal);
        Assert.Equal(issued.AppPassword.Expires, (await Store.GetAsync(User, issued.AppPassword.Id))!.Expires, TimeSpan.FromMilliseconds(1));
    }

    [Theory]
    [InlineData(3651)]
    [InlineData(10675199)]
    public async Task IssueAndRenew_LifetimeBeyondTenYears_AreRefusedWithAMessage(int days)
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);

        var issue = await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "Long", ["imap"], TimeSpan.FromDays(days)));
        var renew = await Assert.ThrowsAsync<AppPasswordException>(() => Store.RenewAsync(User, issued.AppPassword.Id, TimeSpan.FromDays(days)));

        Assert.Contains("lifetime must be between", issue.Message, StringComparison.Ordinal);
        Assert.Contains("lifetime must be between", renew.Message, StringComparison.Ordinal);
    }
}
