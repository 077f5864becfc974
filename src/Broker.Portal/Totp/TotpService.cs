using System.Globalization;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using OtpNet;

namespace Broker.Portal.Totp;

/// <summary>
/// TOTP (RFC 6238, SHA-1, 6 digits, 30 s) stricter than Identity's built-in provider: at most one
/// step of clock drift either way, and a time step once accepted is never accepted again for the
/// user (the last accepted step is stored on the account). Otp.NET does the HOTP arithmetic.
/// </summary>
public sealed class TotpService(UserManager<PortalUser> users, TimeProvider time, IOptions<PortalOptions> options)
{
    private const string TokenProvider = "[Broker]";
    private const string ActiveKey = "TotpKey";
    private const string PendingKey = "PendingTotpKey";
    private static readonly VerificationWindow Window = new(previous: 1, future: 1);

    /// <summary>Creates (or returns the not yet confirmed) secret for enrolling an authenticator app.</summary>
    public async Task<string> GetOrCreatePendingKeyAsync(PortalUser user)
    {
        var existing = await users.GetAuthenticationTokenAsync(user, TokenProvider, PendingKey);
        if (!string.IsNullOrEmpty(existing))
        {
            return existing;
        }

        var key = Base32Encoding.ToString(KeyGeneration.GenerateRandomKey(20));
        await users.SetAuthenticationTokenAsync(user, TokenProvider, PendingKey, key);
        return key;
    }

    /// <summary>The otpauth:// URI authenticator apps read from the QR code.</summary>
    public string AuthenticatorUri(PortalUser user, string key)
    {
        var issuer = Uri.EscapeDataString(options.Value.ProductName);
        var account = Uri.EscapeDataString(user.UserName!);
        return $"otpauth://totp/{issuer}:{account}?secret={key}&issuer={issuer}&algorithm=SHA1&digits=6&period=30";
    }

    /// <summary>Checks a code against the pending key and, when right, makes it the user's authenticator.</summary>
    public async Task<bool> ConfirmAsync(PortalUser user, string? code, string name)
    {
        var key = await users.GetAuthenticationTokenAsync(user, TokenProvider, PendingKey);
        if (string.IsNullOrEmpty(key) || !Check(key, code, time.GetUtcNow(), lastStep: 0, out var step))
        {
            return false;
        }

        await users.SetAuthenticationTokenAsync(user, TokenProvider, ActiveKey, key);
        await users.RemoveAuthenticationTokenAsync(user, TokenProvider, PendingKey);
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

    public async Task RemoveAsync(PortalUser user)
    {
        await users.RemoveAuthenticationTokenAsync(user, TokenProvider, ActiveKey);
        await users.RemoveAuthenticationTokenAsync(user, TokenProvider, PendingKey);
        user.TotpName = null;
        user.TotpAddedAt = null;
        await users.UpdateAsync(user);
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
