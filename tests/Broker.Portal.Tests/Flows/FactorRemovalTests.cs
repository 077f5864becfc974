using System.Net;
using System.Text.RegularExpressions;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Tests.Flows;

/// <summary>
/// Removing a second factor never leaves an account without one, however many removals arrive at
/// once: each removal checks what is left and removes in one step that parallel removals wait for.
/// </summary>
public sealed class FactorRemovalTests
{
    [Fact]
    public async Task ParallelRemovals_OfEveryFactor_LeaveOne_NoServerError()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await ParallelRemovalsLeaveOneFactorAsync(env);
    }

    [Fact]
    public async Task RemovingTheLastFactor_IsRefused()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("lea");
        var page = await user.Client.GetAsync("/Security");
        var refused = await user.Client.PostAsync("/Security", "RemoveTotp", [], page.AntiforgeryToken());
        Assert.Equal(HttpStatusCode.OK, refused.Status);
        Assert.Contains("last sign-in factor", refused.Html, StringComparison.Ordinal);
        Assert.True((await FactorsAsync(env, "lea")).HasAny);
    }

    /// <summary>
    /// Two passkeys and the authenticator app, all three removed at once by one fresh session, for a
    /// few accounts (the race is not won every time). Shared with <see cref="PostgresPortalTests"/>.
    /// </summary>
    internal static async Task ParallelRemovalsLeaveOneFactorAsync(PortalEnvironment env)
    {
        for (var round = 0; round < 4; round++)
        {
            var name = "rex" + round;
            var user = await env.EnrollWithTotpAsync(name);
            await AddPasskeyAsync(env, name, (byte)(10 * round + 1));
            await AddPasskeyAsync(env, name, (byte)(10 * round + 2));
            var page = await user.Client.GetAsync("/Security");
            var ids = Regex.Matches(page.Html, "name=\"Id\" value=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
            Assert.Equal(2, ids.Count);
            var token = page.AntiforgeryToken();

            var results = await Task.WhenAll(ids
                .Select(id => user.Client.PostAsync("/Security", "RemovePasskey", [new("Id", id)], token, follow: false))
                .Append(user.Client.PostAsync("/Security", "RemoveTotp", [], token, follow: false)));

            Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.Redirect, $"{name}: answered {(int)r.Status}"));
            var left = await FactorsAsync(env, name);
            Assert.True(left.HasAny, $"{name}: every second factor was removed");
            // Each removal was checked against what the others left: two go through, the last is refused.
            Assert.Equal(1, left.Passkeys.Count + (left.TotpName is null ? 0 : 1));
            Assert.Equal(2, results.Count(r => r.Status == HttpStatusCode.Redirect));
            Assert.True(await TwoFactorEnabledAsync(env, name));

            await using var scope = env.Portal.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            Assert.Equal(2, await db.SecurityEvents.CountAsync(e => e.Username == name
                && (e.Kind == SecurityEventKinds.PasskeyRemoved || e.Kind == SecurityEventKinds.TotpRemoved)));
        }
    }

    /// <summary>Stores a passkey directly (the HTTP tests cannot run a WebAuthn ceremony); credential ids are unique across accounts.</summary>
    private static async Task AddPasskeyAsync(PortalEnvironment env, string username, byte id)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>();
        var passkey = new UserPasskeyInfo(
            credentialId: [id, 2, 3, 4, 5, 6, 7, 8], publicKey: [1, 2, 3], createdAt: env.Time.GetUtcNow(), signCount: 0, transports: null,
            isUserVerified: true, isBackupEligible: false, isBackedUp: false, attestationObject: [1], clientDataJson: [1]) { Name = "Key " + id };
        Assert.True((await users.AddOrUpdatePasskeyAsync((await users.FindByNameAsync(username))!, passkey)).Succeeded);
    }

    private static async Task<FactorSummary> FactorsAsync(PortalEnvironment env, string username)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>();
        return await scope.ServiceProvider.GetRequiredService<AccountService>().FactorsAsync((await users.FindByNameAsync(username))!);
    }

    private static async Task<bool> TwoFactorEnabledAsync(PortalEnvironment env, string username)
    {
        await using var scope = env.Portal.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>().FindByNameAsync(username))!.TwoFactorEnabled;
    }
}
