using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Accounts;

/// <summary>Runs Identity's passkey assertion and turns every failure into null (never a 500).</summary>
internal static class PasskeyCeremony
{
    public const int MaxCredentialLength = 64 * 1024;

    public static async Task<PortalUser?> AssertAsync(SignInManager<PortalUser> signIn, string? credential, PortalUser? expectedUser, ILogger logger)
    {
        if (string.IsNullOrEmpty(credential) || credential.Length > MaxCredentialLength)
        {
            PortalLog.PasskeyFailed(logger, "missing or oversized credential");
            return null;
        }

        PasskeyAssertionResult<PortalUser> result;
        try
        {
            result = await signIn.PerformPasskeyAssertionAsync(credential);
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.Text.Json.JsonException or FormatException)
        {
            // No ceremony underway (replayed or forged post), or malformed JSON.
            var kind = ex.GetType().Name;
            PortalLog.PasskeyFailed(logger, kind);
            return null;
        }

        if (!result.Succeeded)
        {
            var reason = result.Failure.Message;
            PortalLog.PasskeyFailed(logger, reason);
            return null;
        }

        if (expectedUser is not null && result.User.Id != expectedUser.Id)
        {
            PortalLog.PasskeyFailed(logger, "passkey belongs to another account");
            return null;
        }

        // Keep the new signature counter and flags (clone detection depends on it).
        var updated = await signIn.UserManager.AddOrUpdatePasskeyAsync(result.User, result.Passkey);
        return updated.Succeeded ? result.User : null;
    }

    public static async Task<(UserPasskeyInfo Passkey, PasskeyUserEntity UserEntity)?> AttestAsync(SignInManager<PortalUser> signIn, string? credential, ILogger logger)
    {
        if (string.IsNullOrEmpty(credential) || credential.Length > MaxCredentialLength)
        {
            PortalLog.PasskeyFailed(logger, "missing or oversized credential");
            return null;
        }

        try
        {
            var result = await signIn.PerformPasskeyAttestationAsync(credential);
            if (!result.Succeeded)
            {
                var reason = result.Failure.Message;
                PortalLog.PasskeyFailed(logger, reason);
                return null;
            }

            return (result.Passkey, result.UserEntity);
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.Text.Json.JsonException or FormatException)
        {
            var kind = ex.GetType().Name;
            PortalLog.PasskeyFailed(logger, kind);
            return null;
        }
    }
}
