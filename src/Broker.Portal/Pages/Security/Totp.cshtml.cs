using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Totp;
using Microsoft.AspNetCore.Mvc;
using QRCoder;

namespace Broker.Portal.Pages.Security;

/// <summary>
/// Enrolls the authenticator app: QR code plus manual key, confirmed by one valid code. A user who
/// has one already replaces it here (a new phone): the old key works until a code from the new one
/// is confirmed, so there is no moment without a factor, even when the app is the only one. That
/// needs a fresh check (a code from the old app will do) or the repair allowance of a
/// recovery-code sign-in (the old phone is lost).
/// </summary>
public sealed class TotpModel(
    AccountService accounts,
    TotpService totp,
    RecoveryCodeService recoveryCodes,
    SecurityLog log) : PortalPage
{
    public string QrDataUri { get; private set; } = string.Empty;

    public string FormattedKey { get; private set; } = string.Empty;

    public string? Error { get; private set; }

    /// <summary>This view's key, sealed: the form posts it back, so the key confirmed is the key shown here.</summary>
    public string Pending { get; private set; } = string.Empty;

    public IReadOnlyList<string>? NewRecoveryCodes { get; private set; }

    /// <summary>The name of the authenticator app the new one replaces; null when there is none.</summary>
    public string? Replaces { get; private set; }

    public async Task<IActionResult> OnGetAsync()
    {
        var user = await CurrentUserAsync();
        if (!await MayEnrollAsync(user))
        {
            return StepUp();
        }

        Show(user, await totp.NewPendingKeyAsync(user));
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(string? code, string? name, string? pending)
    {
        var user = await CurrentUserAsync();
        if (!await MayEnrollAsync(user))
        {
            return StepUp();
        }

        if (await totp.OpenPendingKeyAsync(user, pending) is not { } key)
        {
            Error = "This setup page has expired. Remove the entry you may have added in your app, scan this new code and enter the code it shows.";
            Show(user, await totp.NewPendingKeyAsync(user));
            return Page();
        }

        var replaced = user.TotpName;
        var label = string.IsNullOrWhiteSpace(name) ? "Authenticator app" : Columns.Clip(new string(name.Where(c => !char.IsControl(c)).Take(101).ToArray()), 100).Trim();
        if (!await totp.ConfirmAsync(user, key, code, label))
        {
            // Same key again: the user has scanned it already and only mistyped or was too slow.
            Error = "That code does not match. Check the time on your phone and enter the current code.";
            Show(user, key);
            return Page();
        }

        // The old key stops working here (ConfirmAsync overwrites it); the activity says so, and
        // whether only the repair allowance permitted the change.
        await log.RecordAsync(
            user,
            SecurityEventKinds.TotpAdded,
            label + (replaced is null ? string.Empty : $", replaces \"{replaced}\"") + RepairNote());
        if (!User.HasMfa())
        {
            await Sessions.SignInAsync(user, mfa: true, "pwd", "otp");
            await log.RecordAsync(user, SecurityEventKinds.SignIn, "completed by enrolling a second factor");
        }

        if (await recoveryCodes.RemainingAsync(user) == 0)
        {
            NewRecoveryCodes = await recoveryCodes.RegenerateAsync(user);
            await log.RecordAsync(user, SecurityEventKinds.RecoveryCodesGenerated);
            return Page();
        }

        Flash("Authenticator app added.");
        return RedirectToPage("/Security/Index");
    }

    private async Task<bool> MayEnrollAsync(PortalUser user) =>
        Sessions.IsFresh(User) || Sessions.MayRepairFactors(User) || !await accounts.HasAnyFactorAsync(user);

    private void Show(PortalUser user, PendingTotpKey pending)
    {
        Replaces = user.TotpName;
        Pending = pending.Sealed;
        FormattedKey = string.Join(' ', pending.Key.Chunk(4).Select(c => new string(c)));
        using var data = QRCodeGenerator.GenerateQrCode(totp.AuthenticatorUri(user, pending.Key), QRCodeGenerator.ECCLevel.M);
        var png = new PngByteQRCode(data).GetGraphic(6);
        QrDataUri = "data:image/png;base64," + Convert.ToBase64String(png);
    }
}
