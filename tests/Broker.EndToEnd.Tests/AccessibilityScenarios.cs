using System.Text;
using Broker.Testing;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace Broker.EndToEnd.Tests;

/// <summary>One portal (with self-registration on, so its page exists) for the accessibility scenarios.</summary>
public sealed class AccessibilityPortal : IAsyncLifetime
{
    public EndToEndEnvironment Env { get; private set; } = null!;

    public async Task InitializeAsync() => Env = await EndToEndEnvironment.StartAsync(new Dictionary<string, string?>
    {
        // The walk posts more sign-in forms in a minute than a person does.
        ["Broker:Portal:SignInPostsPerMinute"] = "1000",
        ["Broker:Portal:SelfRegistration:Enabled"] = "true",
        ["Broker:Portal:SelfRegistration:AllowedDomains:0"] = "example.org",
        // Self-registration needs mail to start; nothing listens there, so the link mail just fails.
        ["Broker:Notifications:Enabled"] = "true",
        ["Broker:Notifications:SmtpHost"] = "127.0.0.1",
        ["Broker:Notifications:SmtpPort"] = FreePort.Get().ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Broker:Notifications:From"] = "broker@example.org",
    });

    public async Task DisposeAsync() => await Env.DisposeAsync();
}

/// <summary>
/// Accessibility of every portal page a user or administrator reaches, in a real browser (issue 3:
/// "accessible (labels, keyboard, contrast)"): axe-core with the WCAG 2.0/2.1 A and AA rules, reflow
/// at 320 CSS pixels (WCAG 1.4.10), and one journey done with the keyboard alone.
/// </summary>
public sealed class AccessibilityScenarios(AccessibilityPortal portal) : IClassFixture<AccessibilityPortal>
{
    private const string Password = "a long portal passphrase 2026";

    private static readonly string[] WcagTags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

    private static readonly AxeRunOptions AxeOptions = new()
    {
        RunOnly = new RunOnlyOptions { Type = "tag", Values = [.. WcagTags] },
        ResultTypes = [ResultType.Violations, ResultType.Incomplete],
    };

    private EndToEndEnvironment Env => portal.Env;

    [Fact]
    public async Task EveryPage_HasNoWcagViolations_AndReflowsAt320Pixels()
    {
        var audit = new PageAudit();
        var link = await Env.CreateUserAsync("ada@example.org", admin: true);
        var page = await Env.NewPageWithAuthenticatorAsync();

        // Signed out.
        await page.GotoAsync(Env.Origin + "/Account/Login");
        await audit.CheckAsync(page, "sign-in");
        await page.Locator("#Username").FillAsync("ada@example.org");
        await page.Locator("#Password").FillAsync("not the password");
        await page.Locator("#sign-in").ClickAsync();
        await Expect(page.Locator("#login-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "sign-in with an error");

        await page.GotoAsync(Env.Origin + "/Account/Register");
        await audit.CheckAsync(page, "register");
        // The server's own answer to a malformed address, not the browser's bubble.
        await page.Locator("form:has(#Email)").EvaluateAsync("f => f.noValidate = true");
        await page.Locator("#Email").FillAsync("not an address");
        await page.Locator("#register").ClickAsync();
        await Expect(page.Locator("#register-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "register with an error");
        await page.Locator("#Email").FillAsync("someone@example.org");
        await page.Locator("#register").ClickAsync();
        await Expect(page.Locator("#register-sent")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "register, link sent");

        foreach (var (path, state) in new[] { ("/no-such-page", "404"), ("/Error?code=429", "429"), ("/Error?code=400", "400"), ("/Error", "error") })
        {
            await page.GotoAsync(Env.Origin + path);
            await Expect(page.Locator("#error-title")).ToBeVisibleAsync();
            await audit.CheckAsync(page, "error page " + state);
        }

        // Enrollment.
        await page.GotoAsync(link);
        await audit.CheckAsync(page, "enroll");
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password + " but different");
        await page.Locator("#set-password").ClickAsync();
        await Expect(page.Locator("#enroll-errors")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "enroll with errors");
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password);
        await page.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");
        await Expect(page.Locator("#enroll-required")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "security, second factor required");

        await page.Locator("#add-totp").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security/Totp");
        await audit.CheckAsync(page, "authenticator setup with QR code");
        await page.Locator("#Code").FillAsync("000000");
        await page.Locator("#confirm-totp").ClickAsync();
        await Expect(page.Locator("#totp-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "authenticator setup with an error");
        var totp = await EnrollTotpAsync(page);
        await audit.CheckAsync(page, "authenticator added, recovery codes");

        await page.GotoAsync(Env.Origin + "/Security");
        await page.Locator("#PasskeyName").FillAsync("Laptop");
        await page.Locator("#add-passkey").ClickAsync();
        await Expect(page.Locator("#passkey-list")).ToContainTextAsync("Laptop");
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.Locator("#new-recovery-codes").ClickAsync();
        await Expect(page.Locator("#recovery-codes")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "security with factors and new recovery codes");
        await audit.CheckPhoneAsync(page, "security with factors and new recovery codes", "#passkey-list");

        // App passwords.
        await page.GotoAsync(Env.Origin + "/AppPasswords");
        await audit.CheckAsync(page, "app passwords, none yet");
        await page.GotoAsync(Env.Origin + "/AppPasswords/New");
        await audit.CheckAsync(page, "new app password");
        foreach (var box in await page.Locator("input[name='Scopes']").AllAsync())
        {
            await box.UncheckAsync();
        }

        await page.Locator("#Name").FillAsync("Thunderbird");
        await page.Locator("#create-app-password").ClickAsync();
        await Expect(page.Locator("#new-app-password-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "new app password with an error");
        await page.Locator("input[name='Scopes'][value='imap']").CheckAsync();
        await page.Locator("#create-app-password").ClickAsync();
        await Expect(page.Locator("#app-password")).ToBeVisibleAsync();
        var secret = (await page.Locator("#app-password").TextContentAsync())!.Trim();
        await page.Locator("#copy-app-password").ClickAsync();
        // Said in a live region, so a screen reader hears it without moving focus.
        await Expect(page.Locator("[role='status'][data-copy-status='app-password']")).Not.ToBeEmptyAsync();
        await audit.CheckAsync(page, "new app password shown once");

        Assert.Equal(200, (await Env.ValidateThroughGatewayAsync("ada@example.org", secret, "imap")).Status);
        await Env.Portal.AppPasswords.SetNewNetworkApprovalAsync("ada@example.org", true);
        var elsewhere = new Broker.Core.AppPasswords.ValidationContext("imap", "198.51.100.23", "Thunderbird");
        Assert.Equal(Broker.Core.AppPasswords.ValidationResult.ApprovalRequired, (await Env.Portal.AppPasswords.ValidateAsync("ada@example.org", secret, elsewhere)).Result);
        await page.GotoAsync(Env.Origin + "/AppPasswords");
        await Expect(page.Locator("#pending")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "app passwords with one waiting for approval");

        // Several, as a phone shows them: long unbroken words and IPv6 networks, one revoked (no buttons).
        var store = Env.Portal.AppPasswords;
        var phone = await store.IssueAsync("ada@example.org", "Ada's-iPhone-15-Pro-Max-Mail", ["imap", "submission", "sieve"], null);
        await store.SetAllowedNetworksAsync("ada@example.org", phone.AppPassword.Id, ["2001:db8:4242:abcd::/64", "192.0.2.0/24"]);
        await store.ValidateAsync("ada@example.org", phone.Secret, new Broker.Core.AppPasswords.ValidationContext("imap", "2001:db8:4242:abcd:1234:5678:9abc:def0", "com.apple.mobilemail"));
        var old = await store.IssueAsync("ada@example.org", "Old laptop (Outlook)", ["pop3"], null);
        await store.RevokeAsync("ada@example.org", old.AppPassword.Id);
        await page.GotoAsync(Env.Origin + "/AppPasswords");
        await Expect(page.Locator("#app-passwords tbody tr")).ToHaveCountAsync(3);
        await audit.CheckAsync(page, "app passwords, several");
        await audit.CheckFitsAsync(page, "app passwords, several", "#app-passwords");
        await audit.CheckPhoneAsync(page, "app passwords, several", "#app-passwords");
        await audit.CheckOverflowsAsync(page, "app passwords, several", "#app-passwords", 660);
        await page.Locator("#app-passwords details summary").First.ClickAsync();
        await audit.CheckAsync(page, "app passwords, limits open");
        await audit.CheckPhoneAsync(page, "app passwords, limits open", "#app-passwords");

        await page.GotoAsync(Env.Origin + "/Security/Activity");
        await audit.CheckAsync(page, "activity");
        await audit.CheckPhoneAsync(page, "activity", "#activity");

        await page.GotoAsync(Env.Origin + "/Account/StepUp?returnUrl=/AppPasswords/New");
        await audit.CheckAsync(page, "step-up");
        await page.Locator("#Code").FillAsync("000000");
        await page.Locator("#stepup-verify").ClickAsync();
        await Expect(page.Locator("#stepup-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "step-up with an error");

        // Administration.
        await page.GotoAsync(Env.Origin + "/Admin/Users");
        await audit.CheckAsync(page, "admin users");
        await audit.CheckOverflowsAsync(page, "admin users", "#users", 660);
        await audit.CheckPhoneAsync(page, "admin users", "#users");
        await audit.CheckPhoneAsync(page, "admin users, audit trail", "#audit");
        await page.Locator("#NewUsername").FillAsync("newcomer@example.org");
        await page.Locator("#create-user").ClickAsync();
        await Expect(page.Locator("#enrollment-link")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "admin users with an enrollment link");
        await page.GotoAsync(Env.Origin + "/Admin/ApiKeys");
        await audit.CheckAsync(page, "admin API keys");
        await page.Locator("#Name").FillAsync("dovecot-1");
        await page.Locator("#create-api-key").ClickAsync();
        await Expect(page.Locator("#new-api-key")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "admin API keys with a new key");
        await audit.CheckPhoneAsync(page, "admin API keys with a new key", "#api-keys");
        await page.GotoAsync(Env.Origin + "/Admin/Policy");
        await audit.CheckAsync(page, "admin policy");
        await page.Locator("#MinimumLifetime").FillAsync("soon");
        await page.Locator("#save-policy").ClickAsync();
        await Expect(page.Locator("#policy-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "admin policy with an error");
        await page.GotoAsync(Env.Origin + "/Admin/Audit");
        await Expect(page.Locator("#audit-events")).ToContainTextAsync("newcomer@example.org");
        await audit.CheckAsync(page, "admin audit");
        await audit.CheckPhoneAsync(page, "admin audit", "#audit-events");
        await audit.CheckOverflowsAsync(page, "admin audit", "#audit-events", 660);

        await page.Locator("#sign-out-form button").ClickAsync();
        await Expect(page.Locator("#signed-out")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "signed out");

        // Second factor with both a passkey and an authenticator app.
        await SignInWithPasswordAsync(page, "ada@example.org");
        await Expect(page.Locator("#use-passkey")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "second factor, passkey or code");
        await page.Locator("#Code").FillAsync(WrongCode(totp));
        await page.Locator("#verify-code").ClickAsync();
        await Expect(page.Locator("#second-factor-error")).ToBeVisibleAsync();
        await audit.CheckAsync(page, "second factor with an error");

        // An ordinary user with an authenticator app only, who tries an administrator page.
        var bea = await Env.Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = PageAudit.Wide });
        var other = await bea.NewPageAsync();
        await other.GotoAsync(await Env.CreateUserAsync("bea@example.org"));
        await other.Locator("#Password").FillAsync(Password);
        await other.Locator("#Confirm").FillAsync(Password);
        await other.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(other, "**/Security");
        await other.Locator("#add-totp").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(other, "**/Security/Totp");
        var beaTotp = await EnrollTotpAsync(other);
        await other.Locator("#sign-out-form button").ClickAsync();
        await Expect(other.Locator("#signed-out")).ToBeVisibleAsync();
        await SignInWithPasswordAsync(other, "bea@example.org");
        await Expect(other.Locator("#verify-code")).ToBeVisibleAsync();
        Assert.Equal(0, await other.Locator("#use-passkey").CountAsync());
        await audit.CheckAsync(other, "second factor, code only");
        await other.Locator("#Code").FillAsync(beaTotp.ComputeTotp(DateTime.UtcNow));
        await other.Locator("#verify-code").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(other, "**/AppPasswords");
        await other.GotoAsync(Env.Origin + "/Admin/Users");
        await EndToEndEnvironment.ArrivedAsync(other, "**/Account/Denied**");
        await audit.CheckAsync(other, "not allowed");
        await bea.CloseAsync();
        await page.Context.CloseAsync();

        Assert.True(audit.Problems.Count == 0, audit.Report());
    }

    [Fact]
    public async Task KeyboardOnly_SignInWithPasswordAndCode_CreateSeeAndRevokeAppPassword()
    {
        // Set-up with the mouse: an account with an authenticator app.
        var setup = await Env.Browser.NewContextAsync();
        var page = await setup.NewPageAsync();
        await page.GotoAsync(await Env.CreateUserAsync("kim@example.org"));
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#Confirm").FillAsync(Password);
        await page.Locator("#set-password").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security");
        await page.Locator("#add-totp").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Security/Totp");
        var totp = await EnrollTotpAsync(page);
        await setup.CloseAsync();

        // From here on, the keyboard only.
        var context = await Env.Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = PageAudit.Wide });
        page = await context.NewPageAsync();
        var keys = new KeyboardUser(page);
        await page.GotoAsync(Env.Origin + "/Account/Login");

        // The first Tab reaches the skip link; it shows on screen and moves focus to the main content.
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("Skip to content", await keys.ActiveAsync("el => el.textContent.trim()"));
        await keys.AssertFocusVisibleAsync();
        Assert.True(await keys.ActiveAsync<bool>("el => { const r = el.getBoundingClientRect(); return r.left >= 0 && r.top >= 0 && r.width > 0; }"), "the focused skip link is off screen");
        await page.Keyboard.PressAsync("Enter");
        Assert.True(await keys.ActiveAsync<bool>("el => el.closest('main') !== null"), "Enter on the skip link did not move focus into main");

        await keys.TabToAsync("#Username");
        await page.Keyboard.TypeAsync("kim@example.org");
        await keys.TabToAsync("#Password");
        await page.Keyboard.TypeAsync(Password);
        await keys.TabToAsync("#sign-in");
        await page.Keyboard.PressAsync("Enter");
        await EndToEndEnvironment.ArrivedAsync(page, "**/Account/SecondFactor**");

        await keys.TabToAsync("#Code");
        await page.Keyboard.TypeAsync(totp.ComputeTotp(DateTime.UtcNow));
        await keys.TabToAsync("#verify-code");
        await page.Keyboard.PressAsync("Space");
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");

        await keys.TabToAsync("#new-app-password");
        await page.Keyboard.PressAsync("Enter");
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords/New");
        await keys.TabToAsync("#Name");
        await page.Keyboard.TypeAsync("Keyboard Mail");
        // A suggestion button fills the name too, with Space.
        await keys.TabToAsync("button[data-suggest='Thunderbird']");
        await page.Keyboard.PressAsync("Space");
        Assert.Equal("Thunderbird", await page.Locator("#Name").InputValueAsync());
        await keys.TabToAsync("#create-app-password");
        // Shift+Tab goes back to the field before it, and Tab forward again.
        await page.Keyboard.PressAsync("Shift+Tab");
        Assert.Equal("Lifetime", await keys.ActiveAsync("el => el.id"));
        await keys.AssertFocusVisibleAsync();
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("create-app-password", await keys.ActiveAsync("el => el.id"));
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("#app-password")).ToBeVisibleAsync();
        var secret = (await page.Locator("#app-password").TextContentAsync())!.Trim();
        Assert.Equal(200, (await Env.ValidateThroughGatewayAsync("kim@example.org", secret, "imap")).Status);
        await keys.TabToAsync("#copy-app-password");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("[data-copy-status='app-password']")).Not.ToBeEmptyAsync();

        await keys.TabToAsync("#done");
        await page.Keyboard.PressAsync("Enter");
        await EndToEndEnvironment.ArrivedAsync(page, "**/AppPasswords");
        // At the desktop width the table fits, and on a phone it is cards: either way its box has
        // nothing to scroll, so Tab goes from the menu to the first button without stopping on it.
        await keys.TabToAsync("#app-passwords button.danger");
        await page.SetViewportSizeAsync(320, 640);
        await page.ReloadAsync();
        // The confirmation is the browser's own dialog; a keyboard user answers it with Enter.
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await keys.TabToAsync("#app-passwords button.danger");
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator(".flash")).ToBeVisibleAsync();
        await Expect(page.Locator("#app-passwords .badge.bad")).ToHaveTextAsync("revoked");
        Assert.Equal(403, (await Env.ValidateThroughGatewayAsync("kim@example.org", secret, "imap")).Status);
        await context.CloseAsync();
    }

    /// <summary>Confirms the setup page's key with the code of the time step before this one, so a sign-in with the current code is not a replay.</summary>
    private static async Task<OtpNet.Totp> EnrollTotpAsync(IPage page)
    {
        var totp = await EndToEndEnvironment.TotpFromSetupPageAsync(page);
        await page.Locator("#Code").FillAsync(totp.ComputeTotp(DateTime.UtcNow.AddSeconds(-30)));
        await page.Locator("#confirm-totp").ClickAsync();
        await Expect(page.Locator("#recovery-codes")).ToBeVisibleAsync();
        return totp;
    }

    private static string WrongCode(OtpNet.Totp totp)
    {
        var now = DateTime.UtcNow;
        var taken = new[] { totp.ComputeTotp(now.AddSeconds(-30)), totp.ComputeTotp(now), totp.ComputeTotp(now.AddSeconds(30)) };
        return Enumerable.Range(0, 10).Select(i => new string((char)('0' + i), 6)).First(c => !taken.Contains(c));
    }

    private async Task SignInWithPasswordAsync(IPage page, string username)
    {
        await page.GotoAsync(Env.Origin + "/Account/Login");
        await page.Locator("#Username").FillAsync(username);
        await page.Locator("#Password").FillAsync(Password);
        await page.Locator("#sign-in").ClickAsync();
        await EndToEndEnvironment.ArrivedAsync(page, "**/Account/SecondFactor**");
    }

    private static ILocatorAssertions Expect(ILocator locator) => Assertions.Expect(locator);

    /// <summary>
    /// Collects what each page state gets wrong, so one run lists everything to fix: axe violations
    /// (rule, impact, selectors) at the desktop width, horizontal scrolling at 320 CSS pixels, and
    /// for the tables a phone shows as cards, their layout, axe and roles at phone widths.
    /// </summary>
    private sealed class PageAudit
    {
        public static readonly ViewportSize Wide = new() { Width = 1100, Height = 800 };

        private static readonly ViewportSize Narrow = new() { Width = 320, Height = 640 };

        /// <summary>
        /// WCAG 1.4.10: the page itself must not scroll sideways. A table may scroll inside its own
        /// container; such a container must then be reachable with the keyboard (tabindex), or the
        /// columns out of view cannot be scrolled to without a mouse.
        /// </summary>
        private const string ReflowScript = """
            () => {
              const de = document.documentElement, width = de.clientWidth, out = [];
              const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + [...el.classList].map(c => '.' + c).join('');
              const scrolls = el => ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(el).overflowX);
              if (de.scrollWidth > width) {
                const culprits = [...document.body.querySelectorAll('*')].filter(el => {
                  if (el.getBoundingClientRect().right <= width + 0.5) return false;
                  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                    if (scrolls(p) || p.getBoundingClientRect().right > width + 0.5) return false;
                  }
                  return true;
                });
                out.push(`the page scrolls sideways (${de.scrollWidth}px wide in a ${width}px viewport); sticking out: ` +
                  culprits.slice(0, 5).map(el => `${name(el)} (to ${Math.round(el.getBoundingClientRect().right)}px)`).join(', '));
              }
              for (const el of document.querySelectorAll('*')) {
                if (['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth && el.tabIndex < 0) {
                  out.push(`${name(el)} scrolls sideways but cannot be focused to scroll it with the keyboard (tabindex="0")`);
                }
              }
              return out;
            }
            """;

        /// <summary>
        /// On a phone (320 and 390 CSS pixels) a wide table is read as one card per row: neither the
        /// page nor the table's own box scrolls sideways, and every visible button or disclosure in
        /// the table, and every menu entry, is a target of at least 44 by 44 pixels lying wholly on screen.
        /// </summary>
        private const string PhoneTableScript = """
            selector => {
              const de = document.documentElement, width = de.clientWidth, out = [];
              const table = document.querySelector(selector);
              if (!table) return [`${selector} is not on the page`];
              if (de.scrollWidth > width) out.push(`the page scrolls sideways (${de.scrollWidth}px wide)`);
              const box = table.closest('.table-wrap') ?? table;
              if (box.scrollWidth > box.clientWidth) {
                out.push(`${selector}'s box scrolls sideways (${box.scrollWidth}px of content in ${box.clientWidth}px)`);
              }
              const targets = [...table.querySelectorAll('button, .button, summary'), ...document.querySelectorAll('nav a, nav button')];
              for (const el of targets) {
                if (!el.checkVisibility()) continue;
                const r = el.getBoundingClientRect(), what = `"${el.textContent.trim()}" in ${el.closest('nav') ? 'the menu' : selector}`;
                if (r.height < 44 || r.width < 44) out.push(`${what} is ${Math.round(r.width)}x${Math.round(r.height)}px, less than 44x44`);
                if (r.left < 0 || r.right > width + 0.5) out.push(`${what} lies outside the viewport (${Math.round(r.left)} to ${Math.round(r.right)}px)`);
              }
              return out;
            }
            """;

        /// <summary>
        /// The converse of the keyboard rule in <see cref="ReflowScript"/>: a table's box that has
        /// nothing to scroll (the cards on a phone, a table that fits) is a Tab stop that does
        /// nothing, one more key press for keyboard and switch users on every visit. Waits two
        /// frames first: portal.js re-checks the boxes from a ResizeObserver, whose callbacks run
        /// in the rendering step after a resize, not before the next evaluate.
        /// </summary>
        private const string TableBoxTabStopsScript = """
            async () => {
              await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
              const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth;
              return [...document.querySelectorAll('.table-wrap')].map(box => ({
                table: box.querySelector('table')?.id ?? '',
                scrolls: scrolls(box),
                tabStop: box.tabIndex >= 0,
                widths: `${box.scrollWidth}px of content in ${box.clientWidth}px`,
              }));
            }
            """;

        /// <summary>What <see cref="TableBoxTabStopsScript"/> returns; Playwright fills it through a parameterless constructor.</summary>
        private sealed class TableBox
        {
            public string Table { get; set; } = string.Empty;

            public bool Scrolls { get; set; }

            public bool TabStop { get; set; }

            public string Widths { get; set; } = string.Empty;
        }

        public List<string> Problems { get; } = [];

        public int Checked { get; private set; }

        public async Task CheckAsync(IPage page, string state)
        {
            Checked++;
            var where = $"{state} ({new Uri(page.Url).PathAndQuery})";
            await AxeAsync(page, where);
            await CheckIdleTabStopsAsync(page, $"{where}: at {Wide.Width}px");

            await page.SetViewportSizeAsync(Narrow.Width, Narrow.Height);
            foreach (var problem in await page.EvaluateAsync<string[]>(ReflowScript))
            {
                Problems.Add($"{where}: reflow at 320px: {problem}");
            }

            await CheckIdleTabStopsAsync(page, $"{where}: at {Narrow.Width}px");

            await page.SetViewportSizeAsync(Wide.Width, Wide.Height);
        }

        /// <summary>
        /// At the desktop width, <paramref name="table"/> fits its box: a long address in a cell must
        /// not push the last columns (the buttons) out of view.
        /// </summary>
        public async Task CheckFitsAsync(IPage page, string state, string table)
        {
            var widths = await page.Locator(table).EvaluateAsync<int[]>(
                "t => { const b = t.closest('.table-wrap') ?? t; return [b.scrollWidth, b.clientWidth]; }");
            if (widths[0] > widths[1])
            {
                Problems.Add($"{state} ({new Uri(page.Url).PathAndQuery}): at {Wide.Width}px {table}'s box scrolls sideways ({widths[0]}px of content in {widths[1]}px)");
            }
        }

        /// <summary>
        /// At <paramref name="width"/> (wider than the phone layout, narrower than <paramref name="table"/>)
        /// the table scrolls inside its box, so the box must be a Tab stop (WCAG 2.1.1; axe
        /// scrollable-region-focusable); still so after the window went to a phone's width, where
        /// it is not one, and back. Axe runs at that width too.
        /// </summary>
        public async Task CheckOverflowsAsync(IPage page, string state, string table, int width)
        {
            Checked++;
            var where = $"{state} ({new Uri(page.Url).PathAndQuery})";
            await page.SetViewportSizeAsync(width, Narrow.Height);
            await CheckTabStopAsync(page, where, table, $"at {width}px");
            await page.SetViewportSizeAsync(Narrow.Width, Narrow.Height);
            await CheckIdleTabStopsAsync(page, $"{where}: at {Narrow.Width}px");
            await page.SetViewportSizeAsync(width, Narrow.Height);
            await CheckTabStopAsync(page, where, table, $"at {width}px after {Narrow.Width}px");
            await AxeAsync(page, $"{where} at {width}px");
            await page.SetViewportSizeAsync(Wide.Width, Wide.Height);
        }

        private async Task CheckTabStopAsync(IPage page, string where, string table, string when)
        {
            var boxes = await CheckIdleTabStopsAsync(page, $"{where}: {when}");
            var box = boxes.SingleOrDefault(b => "#" + b.Table == table);
            if (box is null)
            {
                Problems.Add($"{where}: {when} {table} is not in a table box");
            }
            else if (!box.Scrolls)
            {
                Problems.Add($"{where}: {when} {table}'s box was meant to scroll sideways for this check, but it fits ({box.Widths})");
            }
            else if (!box.TabStop)
            {
                Problems.Add($"{where}: {when} {table}'s box scrolls sideways ({box.Widths}) but is not a Tab stop (tabindex=\"0\")");
            }
        }

        private async Task<TableBox[]> CheckIdleTabStopsAsync(IPage page, string where)
        {
            var boxes = await page.EvaluateAsync<TableBox[]>(TableBoxTabStopsScript);
            foreach (var box in boxes.Where(b => b.TabStop && !b.Scrolls))
            {
                Problems.Add($"{where}: the box of {box.Table} is a Tab stop with nothing to scroll ({box.Widths}); only a box that scrolls sideways needs tabindex=\"0\"");
            }

            return boxes;
        }

        /// <summary>
        /// The phone layout of <paramref name="table"/> at 320 and 390 pixels, axe at 320 (the cards
        /// are another rendering, with its own colours and structure), and the table's roles as
        /// Chromium itself exposes them to screen readers there.
        /// </summary>
        public async Task CheckPhoneAsync(IPage page, string state, string table)
        {
            Checked++;
            var where = $"{state} ({new Uri(page.Url).PathAndQuery})";
            foreach (var width in new[] { 390, Narrow.Width })
            {
                await page.SetViewportSizeAsync(width, Narrow.Height);
                foreach (var problem in await page.EvaluateAsync<string[]>(PhoneTableScript, table))
                {
                    Problems.Add($"{where}: phone layout at {width}px: {problem}");
                }

                await CheckIdleTabStopsAsync(page, $"{where}: phone layout at {width}px");
            }

            await AxeAsync(page, $"{where} at {Narrow.Width}px");
            if (await page.Locator(table).EvaluateAsync<bool>("el => el.tagName === 'TABLE'"))
            {
                foreach (var problem in await TableRoleProblemsAsync(page, table))
                {
                    Problems.Add($"{where}: at {Narrow.Width}px: {problem}");
                }
            }

            await page.SetViewportSizeAsync(Wide.Width, Wide.Height);
        }

        /// <summary>
        /// Counts the table, row, column header and cell nodes in Chromium's accessibility tree (over
        /// the DevTools protocol: what a screen reader gets, not what the markup says) against the
        /// elements in the DOM. Chromium drops a table's semantics when CSS changes its display.
        /// </summary>
        private static async Task<List<string>> TableRoleProblemsAsync(IPage page, string table)
        {
            var problems = new List<string>();
            var cdp = await page.Context.NewCDPSessionAsync(page);
            try
            {
                var document = await cdp.SendAsync("DOM.getDocument", new() { ["depth"] = 0 });
                var root = document!.Value.GetProperty("root").GetProperty("nodeId").GetInt32();
                var found = await cdp.SendAsync("DOM.querySelector", new() { ["nodeId"] = root, ["selector"] = table });
                var tableNode = found!.Value.GetProperty("nodeId").GetInt32();
                foreach (var (role, elements) in new[] { ("table", table), ("row", table + " tr"), ("columnheader", table + " th"), ("cell", table + " td") })
                {
                    var expected = await page.Locator(elements).CountAsync();
                    var nodes = await cdp.SendAsync("Accessibility.queryAXTree", new() { ["nodeId"] = tableNode, ["role"] = role });
                    var exposed = nodes!.Value.GetProperty("nodes").EnumerateArray().Count(n => !n.GetProperty("ignored").GetBoolean());
                    if (exposed != expected)
                    {
                        problems.Add($"{table}: {exposed} node(s) with role {role} in the accessibility tree for {expected} element(s) ({elements})");
                    }
                }
            }
            finally
            {
                await cdp.DetachAsync();
            }

            return problems;
        }

        private async Task AxeAsync(IPage page, string where)
        {
            // Legacy mode: axe.run in the page itself. page.RunAxe opens and closes a second page for
            // every check to merge frame results (about 1.5 s a check here instead of 0.3 s); the
            // portal has no frames. Should the mode go, the same is page.EvaluateAsync of
            // BundledAxeScriptProvider's script and axe.run.
#pragma warning disable CS0618
            var result = await page.Locator("html").RunAxeLegacy(AxeOptions);
#pragma warning restore CS0618
            // A contrast axe could not work out is a failure too: no text here sits on an image or a
            // gradient, so "incomplete" has meant a colour mistake (white text on a white card).
            foreach (var violation in result.Violations.Concat(result.Incomplete.Where(r => r.Id == "color-contrast")))
            {
                foreach (var node in violation.Nodes)
                {
                    // The checks that failed say why (for contrast: the colours and the ratio found).
                    var why = string.Join(" ", new[] { node.Any, node.All, node.None }.Where(c => c is not null).SelectMany(c => c).Select(c => c.Message).Distinct());
                    Problems.Add($"{where}: axe {violation.Id} [{violation.Impact}] at {node.Target}: {violation.Help}. {why}");
                }
            }
        }

        public string Report()
        {
            var text = new StringBuilder($"{Problems.Count} accessibility problem(s) in {Checked} page states (axe tags {string.Join(", ", WcagTags)}):");
            foreach (var problem in Problems)
            {
                text.Append('\n').Append("- ").Append(problem);
            }

            return text.ToString();
        }
    }

    /// <summary>Moves focus with Tab alone and checks that each stop shows where the focus is.</summary>
    private sealed class KeyboardUser(IPage page)
    {
        /// <summary>Visible: an outline that is drawn, or a box shadow in its place.</summary>
        private const string FocusStyleScript = """
            el => {
              const s = getComputedStyle(el);
              const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
              return outline || s.boxShadow !== 'none';
            }
            """;

        public Task<string> ActiveAsync(string expression) => ActiveAsync<string>(expression);

        public Task<T> ActiveAsync<T>(string expression) =>
            page.EvaluateAsync<T>($"() => ({expression})(document.activeElement)");

        public async Task AssertFocusVisibleAsync()
        {
            var visible = await ActiveAsync<bool>(FocusStyleScript);
            Assert.True(visible, $"no visible focus style on {await DescribeActiveAsync()} ({page.Url})");
        }

        /// <summary>
        /// A table's box with nothing to scroll (the cards on a phone, a table that fits): stopping
        /// there does nothing. After two frames, so that portal.js's ResizeObserver has had its turn.
        /// </summary>
        private const string IdleTableBoxScript = """
            async () => {
              await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
              const el = document.activeElement;
              return !!el?.matches('.table-wrap') && !(['auto', 'scroll'].includes(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth);
            }
            """;

        /// <summary>
        /// Tab (at most 60 times) until the focused element matches <paramref name="selector"/>;
        /// no stop on the way may be a table's box with nothing to scroll.
        /// </summary>
        public async Task TabToAsync(string selector)
        {
            for (var i = 0; i < 60; i++)
            {
                await page.Keyboard.PressAsync("Tab");
                if (await page.EvaluateAsync<bool>(IdleTableBoxScript))
                {
                    Assert.Fail($"Tab stopped on a table's box with nothing to scroll on the way to {selector} ({page.Url}, {page.ViewportSize?.Width}px): {await DescribeActiveAsync()}");
                }

                if (await page.EvaluateAsync<bool>("s => document.activeElement?.matches(s) ?? false", selector))
                {
                    await AssertFocusVisibleAsync();
                    return;
                }

                if (await page.EvaluateAsync<bool>("() => document.activeElement !== document.body"))
                {
                    await AssertFocusVisibleAsync();
                }
            }

            Assert.Fail($"{selector} was not reached with 60 Tabs on {page.Url}; focus is on {await DescribeActiveAsync()}");
        }

        private Task<string> DescribeActiveAsync() =>
            ActiveAsync("el => el.outerHTML.slice(0, 120)");
    }
}
