global using Microsoft.AspNetCore.Mvc.RazorPages;
