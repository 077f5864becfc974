using Broker.Core.AppPasswords;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>
/// The policy the portal enforces: its configuration (<see cref="PortalOptions"/>) as the default,
/// with the admin overrides of <see cref="PolicyStore"/> winning wherever an admin set them.
/// </summary>
public sealed class PortalPolicy(PolicyStore store, IOptions<PortalOptions> options)
{
    /// <summary>Lifetimes, scopes and approval default in force.</summary>
    public EffectivePolicy Current => store.Current;

    /// <summary><c>any</c> or <c>passkey</c>: the admin override, else <c>Broker:Portal:RequiredFactor</c>.</summary>
    public string RequiredFactor => store.Current.RequiredFactor ?? options.Value.RequiredFactor;

    public bool PasskeyRequired => RequiredFactor == FactorKinds.Passkey;

    /// <summary>
    /// Scopes users may pick: the admin's list when one is set, else <c>Broker:Portal:AllowedScopes</c>
    /// (every scope when empty).
    /// </summary>
    public IReadOnlyList<string> Scopes
    {
        get
        {
            var current = store.Current;
            return current.Overridden ? current.AllowedScopes : [.. options.Value.EffectiveScopes.Where(current.Allows)];
        }
    }
}
