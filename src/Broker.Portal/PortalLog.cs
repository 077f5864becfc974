using Microsoft.Extensions.Logging;

namespace Broker.Portal;

/// <summary>
/// Portal log events (ids 3000–3099). Usernames and ids only: never passwords, app passwords,
/// TOTP or recovery codes, tokens or cookies.
/// </summary>
internal static partial class PortalLog
{
    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "Sign-in of {Username} completed ({Methods})")]
    public static partial void SignedIn(ILogger logger, string username, string methods);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "Sign-in refused at step {Step}")]
    public static partial void SignInRefused(ILogger logger, string step);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Information, Message = "Passkey ceremony failed: {Reason}")]
    public static partial void PasskeyFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3013, Level = LogLevel.Information, Message = "{Username} locked out after repeated wrong passwords or codes")]
    public static partial void LockedOut(ILogger logger, string username);

    [LoggerMessage(EventId = 3014, Level = LogLevel.Warning, Message = "A sign-in check met a concurrent change of the account; the user is asked to try again")]
    public static partial void SignInAttemptConflict(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3015, Level = LogLevel.Warning, Message = "Removing a second factor met a database error; nothing was removed and the user is asked to try again")]
    public static partial void FactorRemovalConflict(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3020, Level = LogLevel.Information, Message = "{Username}: {Action}")]
    public static partial void AccountChanged(ILogger logger, string username, string action);

    [LoggerMessage(EventId = 3040, Level = LogLevel.Information, Message = "Self-registration request refused: {Reason}")]
    public static partial void SelfRegistrationRefused(ILogger logger, string reason);

    [LoggerMessage(EventId = 3041, Level = LogLevel.Information, Message = "Self-registration for {Username}: {Outcome}")]
    public static partial void SelfRegistrationHandled(ILogger logger, string username, string outcome);

    [LoggerMessage(EventId = 3042, Level = LogLevel.Warning, Message = "Self-registration queue full: request dropped")]
    public static partial void SelfRegistrationQueueFull(ILogger logger);

    [LoggerMessage(EventId = 3043, Level = LogLevel.Error, Message = "Self-registration request failed")]
    public static partial void SelfRegistrationFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3044, Level = LogLevel.Information, Message = "Removed {Username}: self-registered, never set up, enrollment link long expired")]
    public static partial void UnfinishedAccountRemoved(ILogger logger, string username);

    [LoggerMessage(EventId = 3045, Level = LogLevel.Information, Message = "Kept unfinished account {Username}: it changed while being removed ({Errors})")]
    public static partial void UnfinishedAccountKept(ILogger logger, string username, string errors);

    [LoggerMessage(EventId = 3046, Level = LogLevel.Warning, Message = "Removing unfinished self-registered accounts failed; the next hourly run tries again")]
    public static partial void UnfinishedAccountSweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3030, Level = LogLevel.Warning, Message = "Credential store unavailable during a portal request")]
    public static partial void StoreUnavailable(ILogger logger, Exception exception);
}
