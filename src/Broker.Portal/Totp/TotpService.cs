using System.Globalization;
using System.Security.Cryptography;
using Broker.Portal.Data;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using OtpNet;

namespace Broker.Portal.Totp;

/// <summary>
/// TOTP (RFC 6238, SHA-1, 6 digits, 30 s) stricter than Identity's built-in provider: at most one
/// step of clock drift either way, and a time step once accepted is never accepted again for the
/// user (the last accepted step is stored on the account). Otp.NET does the HOTP arithmetic.
/// </summary>
public sealed class TotpService(UserManager<PortalUser> users, TimeProvider time, IOptions<PortalOptions> options, IDataProtectionProvider protection)
{
    /// <summary>How long a setup page's key can be confirmed.</summary>
    public static readonly TimeSpan PendingKeyLifetime = TimeSpan.FromMinutes(15);

    private const string TokenProvider = "[Broker]";
    private const string ActiveKey = "TotpKey";

    /// <summary>Where earlier versions kept one pending key per account; only ever removed now.</summary>
    private const string LegacyPendingKey = "PendingTotpKey";
    private static readonly VerificationWindow Window = new(previous: 1, future: 1);

    /// <summary>
    /// A new secret for one view of the setup page, and the sealed form of it the page posts back.
    /// Nothing is stored until it is confirmed: every view gets its own key, so a key seen in another
    /// session (someone who knows the password) is never the one the user goes on to enroll. The
    /// sealed key names the account and its security stamp and expires after <see cref="PendingKeyLifetime"/>.
    /// </summary>
    public async Task<PendingTotpKey> NewPendingKeyAsync(PortalUser user)
    {
        var key = Base32Encoding.ToString(KeyGeneration.GenerateRandomKey(20));
        var issued = time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var stamp = await users.GetSecurityStampAsync(user);
        return new PendingTotpKey(key, Protector().Protect(string.Join('\n', user.Id, stamp, issued, key)));
    }

    /// <summary>The key sealed in <paramref name="sealedKey"/> when it is this account's and still current, else null.</summary>
    public async Task<PendingTotpKey?> OpenPendingKeyAsync(PortalUser user, string? sealedKey)
    {
        if (string.IsNullOrEmpty(sealedKey) || sealedKey.Length > 2000)
        {
            return null;
        }

        string[] parts;
        try
        {
            parts = Protector().Unprotect(sealedKey).Split('\n');
        }
        catch (CryptographicException)
        {
            return null;
        }

        if (parts.Length != 4 || parts[0] != user.Id || parts[1] != await users.GetSecurityStampAsync(user)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var issued))
        {
            return null;
        }

        var age = time.GetUtcNow() - DateTimeOffset.FromUnixTimeSeconds(issued);
        return age >= TimeSpan.Zero && age <= PendingKeyLifetime ? new PendingTotpKey(parts[3], sealedKey) : null;
    }

    /// <summary>The otpauth:// URI authenticator apps read from the QR code.</summary>
    public string AuthenticatorUri(PortalUser user, string key)
    {
        var issuer = Uri.EscapeDataString(options.Value.ProductName);
        var account = Uri.EscapeDataString(user.UserName!);
        return $"otpauth://totp/{issuer}:{account}?secret={key}&issuer={issuer}&algorithm=SHA1&digits=6&period=30";
    }

    /// <summary>Checks a code against a setup page's key and, when right, makes it the user's authenticator.</summary>
    public async Task<bool> ConfirmAsync(PortalUser user, PendingTotpKey pending, string? code, string name)
    {
        ArgumentNullException.ThrowIfNull(pending);
        if (!Check(pending.Key, code, time.GetUtcNow(), lastStep: 0, out var step))
        {
            return false;
        }

        await users.SetAuthenticationTokenAsync(user, TokenProvider, ActiveKey, pending.Key);
        await users.RemoveAuthenticationTokenAsync(user, TokenProvider, LegacyPendingKey);
        user.TotpName = name;
        user.TotpAddedAt = time.GetUtcNow();
        user.TotpLastStep = step;
        user.TwoFactorEnabled = true;
        return (await users.UpdateAsync(user)).Succeeded;
    }

    /// <summary>
    /// Verifies a code from the user's authenticator and records its time step. Returns false for a
    /// wrong code, a code outside ±1 step, a replayed step, or a concurrent use of the same code (the
    /// account's concurrency stamp makes only one of two racing updates succeed).
    /// </summary>
    public async Task<bool> VerifyAsync(PortalUser user, string? code)
    {
        var key = await users.GetAuthenticationTokenAsync(user, TokenProvider, ActiveKey);
        if (string.IsNullOrEmpty(key) || user.TotpName is null || !Check(key, code, time.GetUtcNow(), user.TotpLastStep, out var step))
        {
            return false;
        }

        user.TotpLastStep = step;
        return (await users.UpdateAsync(user)).Succeeded;
    }

    /// <summary>Removes the authenticator app; false when an update of the account failed (a concurrent change).</summary>
    public async Task<bool> RemoveAsync(PortalUser user)
    {
        var removed = (await users.RemoveAuthenticationTokenAsync(user, TokenProvider, ActiveKey)).Succeeded
            && (await users.RemoveAuthenticationTokenAsync(user, TokenProvider, LegacyPendingKey)).Succeeded;
        user.TotpName = null;
        user.TotpAddedAt = null;
        return (await users.UpdateAsync(user)).Succeeded && removed;
    }

    /// <summary>The pure check: format, ±1 step window, and step strictly after <paramref name="lastStep"/>.</summary>
    public static bool Check(string base32Key, string? code, DateTimeOffset now, long lastStep, out long step)
    {
        step = 0;
        var digits = NormalizeCode(code);
        if (digits is null)
        {
            return false;
        }

        var totp = new OtpNet.Totp(Base32Encoding.ToBytes(base32Key), step: 30, mode: OtpHashMode.Sha1, totpSize: 6);
        return totp.VerifyTotp(now.UtcDateTime, digits, out step, Window) && step > lastStep;
    }

    /// <summary>The current code for a key; used by tests and nowhere in the portal's own flow.</summary>
    public static string Compute(string base32Key, DateTimeOffset at) =>
        new OtpNet.Totp(Base32Encoding.ToBytes(base32Key), step: 30, mode: OtpHashMode.Sha1, totpSize: 6).ComputeTotp(at.UtcDateTime);

    private IDataProtector Protector() => protection.CreateProtector("Broker.Portal.PendingTotpKey");

    private static string? NormalizeCode(string? code)
    {
        if (code is null)
        {
            return null;
        }

        var digits = string.Concat(code.Where(c => c is not (' ' or '-')));
        return digits.Length == 6 && digits.All(char.IsAsciiDigit) ? digits.ToString(CultureInfo.InvariantCulture) : null;
    }
}

/// <summary>A not yet confirmed authenticator key: the key to show and its sealed form for the setup form.</summary>
public sealed record PendingTotpKey(string Key, string Sealed);
