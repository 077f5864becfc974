using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Security;

/// <summary>
/// Every portal cookie is HttpOnly, SameSite=Lax and Secure. The one exception is a public origin
/// of http://localhost (development and the embedded default), where there is no TLS to require:
/// there cookies are Secure only when the request is.
/// </summary>
internal sealed class SecureCookiePostConfigure(IOptions<PortalOptions> portal)
    : IPostConfigureOptions<CookieAuthenticationOptions>, IPostConfigureOptions<AntiforgeryOptions>
{
    private CookieSecurePolicy Policy =>
        portal.Value.PublicOriginUri is { Scheme: "http", IsLoopback: true } ? CookieSecurePolicy.SameAsRequest : CookieSecurePolicy.Always;

    public void PostConfigure(string? name, CookieAuthenticationOptions options)
    {
        options.Cookie.HttpOnly = true;
        options.Cookie.SameSite = SameSiteMode.Lax;
        options.Cookie.SecurePolicy = Policy;
    }

    public void PostConfigure(string? name, AntiforgeryOptions options)
    {
        options.Cookie.HttpOnly = true;
        options.Cookie.SameSite = SameSiteMode.Strict;
        options.Cookie.SecurePolicy = Policy;
    }
}
