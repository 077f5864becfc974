using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;

namespace Broker.Portal.Pages;

[AllowAnonymous]
[IgnoreAntiforgeryToken]
public sealed class ErrorModel : PortalPage
{
    public int Code { get; private set; }

    /// <summary>The error page must render even when the account database is what failed.</summary>
    protected override bool ChecksAccount => false;

    public void OnGet(int? code) => Code = code ?? 500;

    public void OnPost(int? code) => Code = code ?? 500;
}
