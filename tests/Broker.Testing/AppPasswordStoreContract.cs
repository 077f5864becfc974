using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Core.Redis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using Xunit;

namespace Broker.Testing;

/// <summary>
/// The behaviour every credential store must have, run against each real server Broker
/// supports (redis-server, embedded Garnet): the key design must work unchanged on all of them.
/// </summary>
public abstract class AppPasswordStoreContract : AppPasswordStoreBase
{
    private readonly TestCountryDatabase _countries = TestCountryDatabase.Create();

    private ValidationContext Imap => new("imap", ClientIp, "\"name\" \"Thunderbird\"");

    protected override void Configure(IDictionary<string, string?> settings) =>
        settings["Broker:GeoIp:CountryDatabase"] = _countries.Path;

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _countries.Dispose();
    }

    [Fact]
    public async Task Issue_ThenValidate_AllowsAndRecordsLastUse()
    {
        var issued = await Store.IssueAsync(User, "Thunderbird", ["imap"], null);

        var outcome = await Store.ValidateAsync(User.ToUpperInvariant(), issued.Secret.ToUpperInvariant().Replace("-", string.Empty, StringComparison.Ordinal), Imap);

        Assert.Equal(ValidationResult.Allowed, outcome.Result);
        Assert.Equal(User, outcome.Username);
        Assert.Equal(issued.AppPassword.Id, outcome.CredentialId);
        var listed = Assert.Single(await Store.ListAsync(User));
        Assert.NotNull(listed.LastUsed);
        Assert.Equal(ClientIp, listed.LastUsed.RemoteIp);
        Assert.True(outcome.FirstUseFromNetwork);
        Assert.False((await Store.ValidateAsync(User, issued.Secret, Imap)).FirstUseFromNetwork);
        Assert.Equal("imap", listed.LastUsed.Protocol);
        Assert.Equal("\"name\" \"Thunderbird\"", listed.LastUsed.ClientId);
    }

    [Fact]
    public async Task Validate_RemembersDistinctClients()
    {
        var issued = await Store.IssueAsync(User, "Shared", ["imap"], null);

        foreach (var client in new[] { "\"name\" \"Thunderbird\"", "\"name\" \"iOS Mail\"", "\"name\" \"Thunderbird\"", "" })
        {
            await Store.ValidateAsync(User, issued.Secret, Imap with { ClientId = client });
        }

        Assert.Equal(["\"name\" \"Thunderbird\"", "\"name\" \"iOS Mail\""], Assert.Single(await Store.ListAsync(User)).Clients);
    }

    [Fact]
    public async Task Store_KeepsOnlyAKeyedHash_NeverTheSecret()
    {
        var issued = await Store.IssueAsync(User, "Phone", ["imap"], null);
        AppPasswordFormat.TryCanonicalize(issued.Secret, out var canonical);

        foreach (var server in Redis.GetServers())
        {
            await foreach (var key in server.KeysAsync(pattern: $"*{User}*"))
            {
                var dump = key.ToString();
                if (await Redis.GetDatabase().KeyTypeAsync(key) == RedisType.Hash)
                {
                    dump += string.Join('|', (await Redis.GetDatabase().HashGetAllAsync(key)).Select(e => $"{e.Name}={e.Value}"));
                }

                Assert.DoesNotContain(canonical, dump, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain(issued.Secret, dump, StringComparison.OrdinalIgnoreCase);
            }
        }
    }

    [Fact]
    public async Task PepperRotation_OldAppPasswordsKeepWorking_AndMoveToTheNewPepperAtTheirNextLogin()
    {
        // Its own key prefix, so that the status counts this test's app passwords only.
        var prefix = $"rot-{Guid.NewGuid():N}"[..20];
        string oldPepper = NewPepper(), newPepper = NewPepper();
        await using var before = await StartServicesAsync(s => (s["Redis:KeyPrefix"], s["Broker:Pepper:Value"]) = (prefix, oldPepper));
        await using var rotating = await StartServicesAsync(s => (s["Redis:KeyPrefix"], s["Broker:Pepper:Value"], s["Broker:Pepper:RotationValue"]) = (prefix, newPepper, oldPepper));
        await using var after = await StartServicesAsync(s => (s["Redis:KeyPrefix"], s["Broker:Pepper:Value"]) = (prefix, newPepper));
        AppPasswordService old = before.GetRequiredService<AppPasswordService>(), during = rotating.GetRequiredService<AppPasswordService>(), done = after.GetRequiredService<AppPasswordService>();
        var used = await old.IssueAsync(User, "Used", ["imap"], TimeSpan.FromDays(2));
        var idle = await old.IssueAsync(User, "Idle", ["imap"], null);
        var db = Redis.GetDatabase();
        var keys = new RedisKeys(prefix);
        var oldKey = keys.Credential(User, (string)(await db.HashGetAsync(keys.CredentialIds(User), used.AppPassword.Id))!);
        Assert.Equal((0L, 2L, 0L), Counts(await during.PepperStatusAsync()));

        // The new pepper alone does not know them: that is what the rotation setting is for.
        Assert.Equal(DenyReason.WrongPassword, (await done.ValidateAsync(User, used.Secret, Imap)).Reason);

        var first = await during.ValidateAsync(User, used.Secret, Imap);
        Assert.Equal(ValidationResult.Allowed, first.Result);
        Assert.Equal(used.AppPassword.Id, first.CredentialId);

        // Re-keyed: the new pepper alone accepts it now, the old key is gone, the expiry (TTL) kept.
        Assert.Equal(ValidationResult.Allowed, (await done.ValidateAsync(User, used.Secret, Imap)).Result);
        Assert.False(await db.KeyExistsAsync(oldKey));
        var newKey = keys.Credential(User, (string)(await db.HashGetAsync(keys.CredentialIds(User), used.AppPassword.Id))!);
        Assert.NotEqual(oldKey, newKey);
        Assert.InRange((await db.KeyTimeToLiveAsync(newKey))!.Value, TimeSpan.FromDays(2) - TimeSpan.FromMinutes(5), TimeSpan.FromDays(2));
        Assert.Equal((1L, 1L, 0L), Counts(await during.PepperStatusAsync()));
        Assert.Equal(DenyReason.WrongPassword, (await done.ValidateAsync(User, idle.Secret, Imap)).Reason);
        Assert.Equal(DenyReason.WrongPassword, (await during.ValidateAsync(User, AppPasswordFormat.Generate(), Imap)).Reason);

        // Listed once, with what it had, and managed by id as before.
        var listed = (await done.ListAsync(User)).Single(a => a.Id == used.AppPassword.Id);
        Assert.Equal(used.AppPassword.Expires.ToUnixTimeMilliseconds(), listed.Expires.ToUnixTimeMilliseconds());
        Assert.Equal(ClientIp, listed.LastUsed?.RemoteIp);
        Assert.Equal(2, (await done.ListAsync(User)).Count);
        await done.SetAllowedNetworksAsync(User, used.AppPassword.Id, ["10.0.0.0/8"]);
        Assert.True(await done.RevokeAsync(User, used.AppPassword.Id));
        Assert.Equal(DenyReason.Revoked, (await done.ValidateAsync(User, used.Secret, Imap)).Reason);
        Assert.Equal((0L, 1L, 0L), Counts(await during.PepperStatusAsync()));

        // Issued before pepper ids were stored: counted apart until its next login stamps it.
        var idleKey = keys.Credential(User, (string)(await db.HashGetAsync(keys.CredentialIds(User), idle.AppPassword.Id))!);
        await db.HashDeleteAsync(idleKey, "pk");
        Assert.Equal((0L, 0L, 1L), Counts(await during.PepperStatusAsync()));
        Assert.Equal(ValidationResult.Allowed, (await during.ValidateAsync(User, idle.Secret, Imap)).Result);
        Assert.Equal((1L, 0L, 0L), Counts(await done.PepperStatusAsync()));
        Assert.Equal(ValidationResult.Allowed, (await done.ValidateAsync(User, idle.Secret, Imap)).Result);

        // Under the old pepper but missing from the index (put into Redis by other means than
        // issuing, which writes both at once): refused during the rotation, never carried over.
        var planted = await old.IssueAsync(User, "Planted", ["imap"], null);
        await db.HashDeleteAsync(keys.CredentialIds(User), planted.AppPassword.Id);
        Assert.Equal(DenyReason.WrongPassword, (await during.ValidateAsync(User, planted.Secret, Imap)).Reason);
        Assert.Equal(DenyReason.WrongPassword, (await done.ValidateAsync(User, planted.Secret, Imap)).Reason);

        static string NewPepper() => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        static (long, long, long) Counts(PepperStatus s) => (s.Current, s.Other, s.Unmarked);
    }

    [Fact]
    public async Task PepperRotation_RevokeRacingTheLoginThatMovesTheAppPassword_StillRevokes()
    {
        // A revoke reads the id's hash from the index, then runs its script on that key; the login
        // that moves the app password to the new pepper can fall in between. Raced many times.
        var prefix = $"race-{Guid.NewGuid():N}"[..20];
        string oldPepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), newPepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        await using var before = await StartServicesAsync(s => (s["Redis:KeyPrefix"], s["Broker:Pepper:Value"], s["Broker:Throttling:Enabled"]) = (prefix, oldPepper, "false"));
        await using var rotating = await StartServicesAsync(s => (s["Redis:KeyPrefix"], s["Broker:Pepper:Value"], s["Broker:Pepper:RotationValue"], s["Broker:Throttling:Enabled"]) = (prefix, newPepper, oldPepper, "false"));
        AppPasswordService old = before.GetRequiredService<AppPasswordService>(), during = rotating.GetRequiredService<AppPasswordService>();
        var users = Enumerable.Range(0, 60).Select(i => $"race{i}-{User}").ToArray();
        var issued = await Task.WhenAll(users.Select(u => old.IssueAsync(u, "Phone", ["imap"], null)));

        var revoked = await Task.WhenAll(users.Select(async (u, i) =>
        {
            var login = during.ValidateAsync(u, issued[i].Secret, Imap);
            var revoke = during.RevokeAsync(u, issued[i].AppPassword.Id);
            await login;
            return await revoke;
        }));

        Assert.All(revoked, Assert.True);
        foreach (var (u, i) in users.Select((u, i) => (u, i)))
        {
            Assert.Equal(DenyReason.Revoked, (await during.ValidateAsync(u, issued[i].Secret, Imap)).Reason);
        }
    }

    [Fact]
    public async Task Issue_SetsExpiryAsTheKeysTtl()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], TimeSpan.FromDays(2));
        var keys = new RedisKeys("broker");
        var hash = (string?)await Redis.GetDatabase().HashGetAsync(keys.CredentialIds(User), issued.AppPassword.Id);

        var ttl = await Redis.GetDatabase().KeyTimeToLiveAsync(keys.Credential(User, hash!));

        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromDays(2) - TimeSpan.FromMinutes(5), TimeSpan.FromDays(2) + TimeSpan.FromMinutes(5));
    }

    [Fact]
    public async Task ChangesToAnExpiredAppPassword_LeaveNoKeyBehind()
    {
        var issued = await Store.IssueAsync(User, "Gone", ["imap"], TimeSpan.FromHours(1));
        var keys = new RedisKeys("broker");
        var db = Redis.GetDatabase();
        var credential = keys.Credential(User, (string)(await db.HashGetAsync(keys.CredentialIds(User), issued.AppPassword.Id))!);
        // What the key's TTL does at expiry; the id's index entry stays until a listing tidies it.
        await db.KeyDeleteAsync(credential);

        await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, ["10.0.0.0/8"]));
        await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["DE"]));
        await Assert.ThrowsAsync<AppPasswordException>(() => Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, []));
        Assert.False(await Store.MarkExpiryReminderSentAsync(User, issued.AppPassword.Id));

        Assert.False(await db.KeyExistsAsync(credential));
    }

    [Fact]
    public async Task Issue_AtTheLimit_IsRefused_UntilOneHasExpired_WithoutAListingFirst()
    {
        var limit = Services.GetRequiredService<IOptions<AppPasswordPolicyOptions>>().Value.MaximumPerUser;
        var issued = new List<IssuedAppPassword>();
        for (var i = 0; i < limit; i++)
        {
            issued.Add(await Store.IssueAsync(User, $"Device {i}", ["imap"], TimeSpan.FromHours(1)));
        }

        var refused = await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "One too many", ["imap"], null));
        Assert.Contains($"already has {limit}", refused.Message, StringComparison.Ordinal);

        var keys = new RedisKeys("broker");
        var db = Redis.GetDatabase();
        // What the key's TTL does at expiry; the index entry stays until something tidies it.
        await db.KeyDeleteAsync(keys.Credential(User, (string)(await db.HashGetAsync(keys.CredentialIds(User), issued[0].AppPassword.Id))!));

        // Like the CLI: no listing between the expiry and the issue.
        var next = await Store.IssueAsync(User, "Replacement", ["imap"], null);

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, next.Secret, Imap)).Result);
        Assert.Equal(limit, (await Store.ListAsync(User)).Count);
        await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "Still too many", ["imap"], null));
    }

    [Fact]
    public async Task AllKeysOfAUser_ShareOneClusterSlot()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        var keys = new RedisKeys("broker");
        var hash = (string?)await Redis.GetDatabase().HashGetAsync(keys.CredentialIds(User), issued.AppPassword.Id);

        var slots = new[] { keys.Credential(User, hash!), keys.CredentialIds(User), keys.UserMeta(User) }.Select(k => Redis.HashSlot(k)).Distinct();

        Assert.Single(slots);
    }

    [Fact]
    public async Task Validate_WrongPasswordOrUser_Denies()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);

        Assert.Equal(DenyReason.WrongPassword, (await Store.ValidateAsync(User, AppPasswordFormat.Generate(), Imap)).Reason);
        Assert.Equal(DenyReason.WrongPassword, (await Store.ValidateAsync("someone-else@example.com", issued.Secret, Imap)).Reason);
        Assert.Equal(DenyReason.Malformed, (await Store.ValidateAsync(User, "the-account-password", Imap)).Reason);
        Assert.Equal(DenyReason.Malformed, (await Store.ValidateAsync(User, string.Empty, Imap)).Reason);
        Assert.Equal(DenyReason.Malformed, (await Store.ValidateAsync(string.Empty, issued.Secret, Imap)).Reason);
    }

    [Fact]
    public async Task Validate_ScopeNotGranted_Denies()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);

        var pop = await Store.ValidateAsync(User, issued.Secret, Imap with { Service = "pop3" });
        var smtp = await Store.ValidateAsync(User, issued.Secret, Imap with { Service = "smtp" });
        var unknown = await Store.ValidateAsync(User, issued.Secret, Imap with { Service = "ftp" });

        Assert.Equal(DenyReason.ScopeNotAllowed, pop.Reason);
        Assert.Equal(DenyReason.ScopeNotAllowed, smtp.Reason);
        Assert.Equal(DenyReason.ScopeNotAllowed, unknown.Reason);
    }

    [Fact]
    public async Task Validate_AfterExpiry_Denies()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], TimeSpan.FromHours(1));

        Time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));

        Assert.Equal(DenyReason.Expired, (await Store.ValidateAsync(User, issued.Secret, Imap)).Reason);
    }

    [Fact]
    public async Task Renew_ExtendsExpiryKeepingTheSecret()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], TimeSpan.FromHours(1));
        Time.Advance(TimeSpan.FromMinutes(50));

        var renewed = await Store.RenewAsync(User, issued.AppPassword.Id, TimeSpan.FromDays(10));
        Time.Advance(TimeSpan.FromHours(2));

        Assert.Equal(Time.GetUtcNow() - TimeSpan.FromHours(2) + TimeSpan.FromDays(10), renewed.Expires, TimeSpan.FromSeconds(1));
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, Imap)).Result);
    }

    [Fact]
    public async Task Renew_WithoutALifetime_GivesItsOwnLifetimeAgain_NotTheDefault()
    {
        var year = await Store.IssueAsync(User, "Desktop", ["imap"], TimeSpan.FromDays(365));
        var hour = await Store.IssueAsync(User, "Kiosk", ["imap"], TimeSpan.FromHours(1));
        Assert.Equal(TimeSpan.FromDays(365), year.AppPassword.Lifetime);
        Time.Advance(TimeSpan.FromMinutes(30));

        var longOne = await Store.RenewAsync(User, year.AppPassword.Id, null);
        var shortOne = await Store.RenewAsync(User, hour.AppPassword.Id, null);

        // The default lifetime would have cut the first to a month and stretched the second to one.
        Assert.Equal(Time.GetUtcNow() + TimeSpan.FromDays(365), longOne.Expires, TimeSpan.FromSeconds(1));
        Assert.Equal(Time.GetUtcNow() + TimeSpan.FromHours(1), shortOne.Expires, TimeSpan.FromSeconds(1));

        // A lifetime named at a renewal is the one the next renewal gives again.
        await Store.RenewAsync(User, year.AppPassword.Id, TimeSpan.FromDays(10));
        Time.Advance(TimeSpan.FromDays(2));
        var again = await Store.RenewAsync(User, year.AppPassword.Id, null);
        Assert.Equal(TimeSpan.FromDays(10), again.Lifetime);
        Assert.Equal(Time.GetUtcNow() + TimeSpan.FromDays(10), again.Expires, TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.FromDays(10), (await Store.GetAsync(User, year.AppPassword.Id))!.Lifetime);
    }

    [Fact]
    public async Task Revoke_DeniesAndIsListedAsRevoked()
    {
        var keep = await Store.IssueAsync(User, "Keep", ["imap"], null);
        var drop = await Store.IssueAsync(User, "Drop", ["imap"], null);

        Assert.True(await Store.RevokeAsync(User, drop.AppPassword.Id));

        Assert.Equal(DenyReason.Revoked, (await Store.ValidateAsync(User, drop.Secret, Imap)).Reason);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, keep.Secret, Imap)).Result);
        Assert.NotNull((await Store.ListAsync(User)).Single(a => a.Id == drop.AppPassword.Id).Revoked);
        await Assert.ThrowsAsync<AppPasswordException>(() => Store.RenewAsync(User, drop.AppPassword.Id, null));
    }

    [Fact]
    public async Task Revoke_AnotherUsersId_DoesNothing()
    {
        var issued = await Store.IssueAsync(User, "Mine", ["imap"], null);

        Assert.False(await Store.RevokeAsync("mallory@example.com", issued.AppPassword.Id));
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, Imap)).Result);
    }

    [Fact]
    public async Task RevokeAll_DeniesEveryAppPasswordOfTheUserOnly()
    {
        var a = await Store.IssueAsync(User, "A", ["imap"], null);
        var b = await Store.IssueAsync(User, "B", ["pop3"], null);
        var other = $"other-{Guid.NewGuid():N}";
        var c = await Store.IssueAsync(other, "C", ["imap"], null);

        Assert.Equal(2, await Store.RevokeAllAsync(User));

        Assert.Equal(DenyReason.Revoked, (await Store.ValidateAsync(User, a.Secret, Imap)).Reason);
        Assert.Equal(DenyReason.Revoked, (await Store.ValidateAsync(User, b.Secret, Imap with { Service = "pop3" })).Reason);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(other, c.Secret, Imap)).Result);

        // Issued after the revoke-all: works.
        Time.Advance(TimeSpan.FromMilliseconds(5));
        var d = await Store.IssueAsync(User, "D", ["imap"], null);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, d.Secret, Imap)).Result);
    }

    [Fact]
    public async Task DisabledUser_GetsNoNewOrRenewedOrApprovedAppPassword_AndOldOnesStayRevokedAfterEnabling()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        var before = await Store.IssueAsync(User, "Before", ["imap"], null, approvedFromIp: ClientIp);
        Assert.Equal(ValidationResult.ApprovalRequired, (await Store.ValidateAsync(User, before.Secret, Imap with { RemoteIp = "192.0.2.7" })).Result);

        await Store.SetDisabledAsync(User, true);
        Time.Advance(TimeSpan.FromMilliseconds(5));

        // Issued while disabled, it would have survived the revocation and worked once enabled again.
        var issue = await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "During", ["imap"], null));
        var renew = await Assert.ThrowsAsync<AppPasswordException>(() => Store.RenewAsync(User, before.AppPassword.Id, null));
        Assert.Contains("disabled", issue.Message, StringComparison.Ordinal);
        Assert.Contains("disabled", renew.Message, StringComparison.Ordinal);
        Assert.Equal(NetworkApproval.UserDisabled, await Store.ApproveNetworkAsync(User, before.AppPassword.Id, "192.0.2.0/24"));
                Assert.Equal(["Before"], (await Store.ListAsync(User)).Select(a => a.Name));

        await Store.SetDisabledAsync(User, false);

        Assert.Equal(DenyReason.Revoked, (await Store.ValidateAsync(User, before.Secret, Imap)).Reason);
        Assert.Equal(NetworkApproval.NotPending, await Store.ApproveNetworkAsync(User, before.AppPassword.Id, "192.0.2.0/24"));
        var after = await Store.IssueAsync(User, "After", ["imap"], null);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, after.Secret, Imap)).Result);
    }

    [Fact]
    public async Task DisabledMark_BeforeTheRevocationHasRun_AlreadyRefusesLoginsRenewalsAndApprovals()
    {
        await Store.SetNewNetworkApprovalAsync(User, true);
        var issued = await Store.IssueAsync(User, "A", ["imap"], null, approvedFromIp: ClientIp);
        Assert.Equal(ValidationResult.ApprovalRequired, (await Store.ValidateAsync(User, issued.Secret, Imap with { RemoteIp = "192.0.2.7" })).Result);
        var meta = new RedisKeys("broker").UserMeta(User);

        // What disabling writes first; the revocation of every app password follows it.
        await Redis.GetDatabase().HashSetAsync(meta, "disabled", "1");

        Assert.Equal(DenyReason.Disabled, (await Store.ValidateAsync(User, issued.Secret, Imap)).Reason);
        Assert.Contains("disabled", (await Assert.ThrowsAsync<AppPasswordException>(() => Store.RenewAsync(User, issued.AppPassword.Id, null))).Message, StringComparison.Ordinal);
        Assert.Equal(NetworkApproval.UserDisabled, await Store.ApproveNetworkAsync(User, issued.AppPassword.Id, "192.0.2.0/24"));
        Assert.Equal(["192.0.2.0/24"], (await Store.GetAsync(User, issued.AppPassword.Id))!.PendingNetworks);
        await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "B", ["imap"], null));

        await Redis.GetDatabase().HashDeleteAsync(meta, "disabled");

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, Imap)).Result);
        Assert.Equal(NetworkApproval.Approved, await Store.ApproveNetworkAsync(User, issued.AppPassword.Id, "192.0.2.0/24"));
    }

    [Fact]
    public async Task Issue_RefusesBadInputWithAClearMessage()
    {
        Assert.Contains("scope", (await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "A", [], null))).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("lifetime", (await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "A", ["imap"], TimeSpan.FromMinutes(5)))).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("lifetime", (await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, "A", ["imap"], TimeSpan.FromDays(366)))).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("name", (await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(User, " ", ["imap"], null))).Message, StringComparison.OrdinalIgnoreCase);
        await Assert.ThrowsAsync<AppPasswordException>(() => Store.IssueAsync(" ", "A", ["imap"], null));
    }

    [Fact]
    public async Task AllowedCountriesAndNetworks_EitherLetsTheLoginIn_ElsewhereIsDenied()
    {
        var issued = await Store.IssueAsync(User, "Laptop", ["imap"], null);
        await Store.SetAllowedCountriesAsync(User, issued.AppPassword.Id, ["de"]);
        await Store.SetAllowedNetworksAsync(User, issued.AppPassword.Id, ["81.2.69.0/24"]);

        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, Imap with { RemoteIp = "5.9.1.1" })).Result);
        Assert.Equal(ValidationResult.Allowed, (await Store.ValidateAsync(User, issued.Secret, Imap with { RemoteIp = "81.2.69.142" })).Result);
        Assert.Equal(DenyReason.CountryNotAllowed, (await Store.ValidateAsync(User, issued.Secret, Imap with { RemoteIp = "89.160.20.1" })).Reason);
        Assert.Equal(["DE"], (await Store.GetAsync(User, issued.AppPassword.Id))!.AllowedCountries);
    }

    [Fact]
    public async Task List_IsNewestFirstAndScopedToTheUser()
    {
        await Store.IssueAsync(User, "First", ["imap"], null);
        Time.Advance(TimeSpan.FromSeconds(1));
        await Store.IssueAsync(User, "Second", ["imap", "smtp"], null);

        var list = await Store.ListAsync(User);

        Assert.Equal(["Second", "First"], list.Select(a => a.Name));
        Assert.Equal(["imap", "submission"], list[0].Scopes);
        Assert.Empty(await Store.ListAsync($"nobody-{Guid.NewGuid():N}"));
    }
}

/// <summary>A credential store on a real server, with a fake clock, for store-level tests.</summary>
public abstract class AppPasswordStoreBase : IAsyncLifetime
{
    private ServiceProvider? _services;

    protected FakeTimeProvider Time { get; } = new(DateTimeOffset.UtcNow);

    protected AppPasswordService Store => _services!.GetRequiredService<AppPasswordService>();

    protected IConnectionMultiplexer Redis => _services!.GetRequiredService<IConnectionMultiplexer>();

    /// <summary>The services under test, for tests that need more than the store.</summary>
    protected IServiceProvider Services => _services!;

    protected string User { get; } = $"user-{Guid.NewGuid():N}@example.com";

    /// <summary>A StackExchange.Redis connection string for the server under test.</summary>
    protected abstract string RedisConfiguration { get; }

    /// <summary>Settings beyond <see cref="BrokerApps.BaseConfig"/> for the store under test.</summary>
    protected virtual void Configure(IDictionary<string, string?> settings)
    {
    }

    public virtual async Task InitializeAsync() => _services = await StartServicesAsync(_ => { });

    /// <summary>
    /// Another set of services on the same server and clock, with <paramref name="change"/> applied
    /// to the settings (another pepper, key prefix…), as a second Broker instance would have.
    /// </summary>
    protected async Task<ServiceProvider> StartServicesAsync(Action<IDictionary<string, string?>> change)
    {
        var settings = BrokerApps.BaseConfig(RedisConfiguration);
        Configure(settings);
        change(settings);
        var config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(config);
        services.AddLogging();
        services.AddSingleton<TimeProvider>(Time);
        services.AddBrokerCore();
        var provider = services.BuildServiceProvider();
        await provider.GetRequiredService<AppPasswordService>().WarmUpAsync(TimeSpan.FromSeconds(10));
        return provider;
    }

    public virtual async Task DisposeAsync()
    {
        if (_services is not null)
        {
            await _services.DisposeAsync();
        }
    }

    /// <summary>A client address of this test's own, so failure counters of other tests never throttle it.</summary>
    protected string ClientIp { get; } = $"10.{Random.Shared.Next(256)}.{Random.Shared.Next(256)}.10";
}
