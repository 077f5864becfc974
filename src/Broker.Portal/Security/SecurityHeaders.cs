using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Broker.Portal.Security;

/// <summary>Response headers for every portal response.</summary>
internal static class SecurityHeaders
{
    // No inline script or style anywhere: the CSP forbids both, so an injected tag cannot run.
    // data: images are the TOTP QR code.
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public static IApplicationBuilder UseBrokerSecurityHeaders(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        context.Response.OnStarting(() =>
        {
            var h = context.Response.Headers;
            h.ContentSecurityPolicy = ContentSecurityPolicy;
            h.XContentTypeOptions = "nosniff";
            h.XFrameOptions = "DENY";
            h["Referrer-Policy"] = "no-referrer";
            h["Cross-Origin-Opener-Policy"] = "same-origin";
            h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), publickey-credentials-get=(self), publickey-credentials-create=(self)";
            if (context.Request.IsHttps)
            {
                h.StrictTransportSecurity = "max-age=31536000; includeSubDomains";
            }

            if (!context.Request.Path.StartsWithSegments("/assets", StringComparison.Ordinal))
            {
                // Pages may show secrets (a new app password, recovery codes): never cache them.
                h.CacheControl = "no-store";
            }

            return Task.CompletedTask;
        });
        return next();
    });
}
