using System.Security.Cryptography;
using System.Text;
using Broker.Portal.Data;
using Microsoft.EntityFrameworkCore;

namespace Broker.Portal.Accounts;

/// <summary>
/// Ten single-use recovery codes per user, kept only as SHA-256 hashes (50 random bits each, so a
/// keyed or slow hash adds nothing an attacker with the database could not brute-force anyway).
/// </summary>
public sealed class RecoveryCodeService(PortalDbContext db, TimeProvider time)
{
    public const int Count = 10;
    private const string Alphabet = "abcdefghjkmnpqrstuvwxyz23456789";

    /// <summary>Replaces all codes of the user; the returned codes are shown once.</summary>
    public async Task<IReadOnlyList<string>> RegenerateAsync(PortalUser user)
    {
        await db.RecoveryCodes.Where(r => r.UserId == user.Id).ExecuteDeleteAsync();
        var codes = new List<string>(Count);
        var now = time.GetUtcNow();
        for (var i = 0; i < Count; i++)
        {
            var code = NewCode();
            codes.Add(code);
            db.RecoveryCodes.Add(new RecoveryCode { UserId = user.Id, Hash = Hash(code), CreatedAt = now });
        }

        await db.SaveChangesAsync();
        return codes;
    }

    public Task<int> RemainingAsync(PortalUser user) => db.RecoveryCodes.CountAsync(r => r.UserId == user.Id && r.UsedAt == null);

    /// <summary>Marks a code used. One conditional UPDATE, so two racing uses of one code cannot both succeed.</summary>
    public async Task<bool> RedeemAsync(PortalUser user, string? code)
    {
        var canonical = Canonical(code);
        if (canonical is null)
        {
            return false;
        }

        var hash = Hash(canonical);
        var now = time.GetUtcNow();
        var updated = await db.RecoveryCodes
            .Where(r => r.UserId == user.Id && r.Hash == hash && r.UsedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.UsedAt, now));
        return updated == 1;
    }

    public Task DeleteAllAsync(PortalUser user) => db.RecoveryCodes.Where(r => r.UserId == user.Id).ExecuteDeleteAsync();

    private static string NewCode()
    {
        Span<char> chars = stackalloc char[11];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = i == 5 ? '-' : Alphabet[RandomNumberGenerator.GetInt32(Alphabet.Length)];
        }

        return new string(chars);
    }

    private static string? Canonical(string? code)
    {
        if (code is null || code.Length > 40)
        {
            return null;
        }

        var s = string.Concat(code.Where(c => !char.IsWhiteSpace(c) && c != '-')).ToLowerInvariant();
        return s.Length == 10 ? s.Insert(5, "-") : null;
    }

    private static string Hash(string code) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical(code)!)));
}
