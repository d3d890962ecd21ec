from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from datasets.models import Dataset

GALLERY_SIZE = 24


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "version", "owner", "status", "task", "format", "num_images", "created_at"]
    list_filter = ["status", "task", "format"]
    search_fields = ["name", "owner__username", "content_sha256", "layout_sha256"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Dataset._meta.fields] + ["report", "gallery"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Report")
    def report(self, dataset):
        rows = [("error", p) for p in dataset.errors] + [("warning", p) for p in dataset.warnings]
        if not rows:
            return "No problems."
        return format_html(
            "<table><tr><th>severity</th><th>file</th><th>line</th><th>reason</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((kind, p.get("file") or "", p.get("line") or "", p.get("reason")) for kind, p in rows),
            ),
        )

    @admin.display(description="Previews")
    def gallery(self, dataset):
        records = dataset.files.exclude(preview="").order_by("split", "path")[:GALLERY_SIZE]
        return format_html_join(
            "",
            '<img src="{}" title="{}" style="margin:2px;max-width:160px">',
            (
                (reverse("dataset-thumbnail", kwargs={"pk": dataset.pk, "file_id": r.pk}), f"{r.split}: {r.path}")
                for r in records
            ),
        )
